import { describe, expect, it } from 'vitest';
import { canonicalIp } from '../../src/core/ip.ts';

describe('canonicalIp', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    [' 81.2.69.144 ', '81.2.69.144'],
    ['1.2.3.4:443', '1.2.3.4'],
    ['1.2.3.4:65535', '1.2.3.4'],
    ['[1.2.3.4]', '1.2.3.4'],
  ])('IPv4 %j → %j', (raw, want) => expect(canonicalIp(raw)).toBe(want));

  it.each([
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['[2001:DB8::1]:443', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
    // RFC 5952 §4.2.2: a single zero group is not compressed.
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8::1:2:3:4:5', '2001:db8:0:1:2:3:4:5'],
    // §4.2.3: the longest run wins; on a tie, the first.
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('IPv6 %j → %j (RFC 5952)', (raw, want) => expect(canonicalIp(raw)).toBe(want));

  it.each([
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::FFFF:cb00:7107', '203.0.113.7'],
    ['[::ffff:203.0.113.7]:8443', '203.0.113.7'],
  ])('IPv4-mapped %j → the IPv4 address %j', (raw, want) => expect(canonicalIp(raw)).toBe(want));

  it.each([
    '',
    ' ',
    'garbage',
    '1.2.3',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.4.5',
    '2001:db8:::1',
    '::ffff:1.2.3.4:80',
    'http://1.2.3.4/',
    '1.2.3.4/24',
    `${'1'.repeat(200)}`,
    '1.2.3.4\n5.6.7.8',
    // A port beyond 65535 makes the text no address.
    '1.2.3.4:99999',
    '1.2.3.4:65536',
    '[2001:db8::1]:70000',
  ])('rejects %j', (raw) => expect(canonicalIp(raw)).toBeUndefined());

  it('rejects non-strings without throwing', () => {
    for (const v of [undefined, null, 1234, {}, [], true]) {
      expect(canonicalIp(v as unknown as string)).toBeUndefined();
    }
  });

  it.each([
    ['::', '::'],
    ['1::', '1::'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['ABCD:EF01:2345:6789:ABCD:EF01:2345:6789', 'abcd:ef01:2345:6789:abcd:ef01:2345:6789'],
    ['0fff:00ff:000f:0000:f000:0f00:00f0:000f', 'fff:ff:f:0:f000:f00:f0:f'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['::1.2.3.4', '::102:304'],
    ['::ffff:0:1.2.3.4', '::ffff:0:102:304'],
  ])('IPv6 %j → %j (groups, gaps and embedded IPv4)', (raw, want) => expect(canonicalIp(raw)).toBe(want));
});
