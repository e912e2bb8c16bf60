import { describe, expect, it } from 'vitest';
import { parseDetection } from '../../src/core/formats/index.ts';
import {
  ARC_OPERATIONS,
  ARC_RULE_ID,
  echo,
  isArcOperation,
  LIST_CLUSTER_USER_CREDENTIAL,
  LIST_CLUSTER_USER_CREDENTIALS_PREVIEW,
  matchOperation,
} from '../../src/core/rule.ts';

describe('matchOperation', () => {
  it('pins the rule constants', () => {
    expect(ARC_RULE_ID).toBe('022c37cd-5a4f-422b-8227-b136b7a23180');
    expect(ARC_OPERATIONS).toEqual([
      'Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action',
      'Microsoft.Kubernetes/connectedClusters/listClusterUserCredentials/action',
    ]);
  });

  it.each([
    LIST_CLUSTER_USER_CREDENTIAL,
    'MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIAL/ACTION',
    'microsoft.kubernetes/connectedclusters/listclusterusercredential/action',
    // The preview plural, which the Elastic rule itself misses.
    LIST_CLUSTER_USER_CREDENTIALS_PREVIEW,
    'MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/LISTCLUSTERUSERCREDENTIALS/ACTION',
  ])('matches %s', (op) => {
    expect(matchOperation(op, 'Success')).toEqual({ ok: true });
  });

  it.each(['Success', 'success', 'SUCCESS', 'Succeeded', 'succeeded'])('counts outcome %s', (outcome) => {
    expect(matchOperation(LIST_CLUSTER_USER_CREDENTIAL, outcome)).toEqual({ ok: true });
  });

  it.each(['Start', 'Started', 'Failure', 'Failed', 'failure', 'Accepted'])(
    'rejects outcome %s, naming it',
    (outcome) => {
      const m = matchOperation(LIST_CLUSTER_USER_CREDENTIAL, outcome);
      expect(m.ok).toBe(false);
      if (!m.ok) expect(m.reason).toContain(`"${outcome}"`);
    },
  );

  it('rejects a missing outcome', () => {
    for (const outcome of [undefined, null, '']) {
      const m = matchOperation(LIST_CLUSTER_USER_CREDENTIAL, outcome);
      expect(m.ok).toBe(false);
      if (!m.ok) expect(m.reason).toMatch(/no outcome/);
    }
  });

  it('names where the format keeps the outcome when there is none', () => {
    const m = matchOperation(LIST_CLUSTER_USER_CREDENTIAL, undefined, 'status.value');
    expect(m).toEqual({
      ok: false,
      reason: expect.stringMatching(/has no outcome \(no status\.value\): only successful calls/),
    });
  });

  it('rejects other operations, naming them', () => {
    const m = matchOperation(
      'Microsoft.Kubernetes/connectedClusters/listClusterAdminCredential/action',
      'Success',
    );
    expect(m.ok).toBe(false);
    if (!m.ok) expect(m.reason).toContain('listClusterAdminCredential');
    const none = matchOperation(undefined, 'Success');
    expect(none.ok).toBe(false);
    if (!none.ok) expect(none.reason).toMatch(/no operation/);
  });

  it('keeps the reason short for a huge operation', () => {
    const m = matchOperation('x'.repeat(1_000_000), 'Success');
    expect(m.ok).toBe(false);
    if (!m.ok) expect(m.reason.length).toBeLessThan(400);
  });

  it('matches any letter case and surrounding spaces, whatever the spelling arrives as', () => {
    const op = LIST_CLUSTER_USER_CREDENTIAL;
    for (const spelling of [
      op,
      ` ${op.toUpperCase()}\t`,
      op.replace('K', 'k'),
      // KELVIN SIGN lower-cases to an ASCII k, as the Set of lower-cased names sees it.
      op.replace('Kubernetes', '\u212Aubernetes'),
    ]) {
      expect(isArcOperation(spelling), JSON.stringify(spelling)).toBe(true);
    }
    for (const other of [
      op.slice(1),
      `${op}x`,
      // U+0130 lower-cases to two characters: never one of the names.
      op.replace('i', '\u0130'),
      'MICROSOFT.RESOURCES/DEPLOYMENTS/WRITE',
      '',
    ]) {
      expect(isArcOperation(other), JSON.stringify(other)).toBe(false);
    }
  });
});

describe('reasons quoting what arrived', () => {
  /** A high surrogate not followed by its low half: a character cut in two. */
  const loneHigh = /[\ud800-\udbff](?![\udc00-\udfff])/;

  it('cut a long value short without splitting a character in two', () => {
    const value = `${'a'.repeat(119)}😀tail`;
    const quoted = echo(value);
    expect(quoted).toBe(JSON.stringify(`${'a'.repeat(119)}…`));
    expect(loneHigh.test(JSON.parse(quoted) as string)).toBe(false);
    expect(echo(`${'a'.repeat(118)}😀tail`)).toBe(JSON.stringify(`${'a'.repeat(118)}😀…`));
  });

  it('name long keys of an unrecognised event without splitting a character in two', () => {
    const result = parseDetection({ [`${'k'.repeat(39)}😀rest`]: 1 });
    expect(result).toMatchObject({ ok: false, kind: 'invalid' });
    const reason = (result as { reason: string }).reason;
    expect(reason).toContain(JSON.stringify(`${'k'.repeat(39)}…`));
    expect(loneHigh.test(reason)).toBe(false);
  });
});
