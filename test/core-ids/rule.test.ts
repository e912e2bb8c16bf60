import { describe, expect, it } from 'vitest';
import {
  ARC_OPERATIONS,
  ARC_RULE_ID,
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
