import type { TokenCredential } from '@azure/identity';
import { dashGuid } from '../core/azure-ids.ts';
import type { OwnIdentity } from '../core/remediation-plan.ts';

/** Where the identity of the service's own tokens comes from, as a plan's alarm names it. */
const TOKEN_SOURCE = 'named by its own access tokens';

/**
 * The identity an access token was issued to: its `appid` (v1 tokens) or `azp` (v2) claim and
 * its `oid`. The payload is read without checking the signature: the token is the service's own,
 * from its own credential. Undefined for a token that is no JWT or names neither.
 */
export function tokenIdentity(token: string): Omit<OwnIdentity, 'source'> | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof claims !== 'object' || claims === null) return undefined;
  const { appid, azp, oid } = claims as Record<string, unknown>;
  const appId = dashGuid(appid) ?? dashGuid(azp);
  const objectId = dashGuid(oid);
  if (!appId && !objectId) return undefined;
  return { ...(appId ? { appId } : {}), ...(objectId ? { objectId } : {}) };
}

/**
 * The credential, watched: it reads who each token it obtains (for ARM or Graph) was issued to, so
 * that the service knows its own identity, a managed identity's included, without a request of
 * its own. `own()` gives `AZURE_CLIENT_ID` (when a GUID) and the identity of the last token.
 */
export function watchOwnIdentity(
  credential: TokenCredential,
  clientId: string | undefined,
): { credential: TokenCredential; own: () => OwnIdentity[] } {
  const configured: OwnIdentity[] = clientId ? [{ appId: clientId, source: 'AZURE_CLIENT_ID' }] : [];
  let fromToken: OwnIdentity | undefined;
  return {
    credential: {
      async getToken(scopes, options) {
        const token = await credential.getToken(scopes, options);
        const identity = token ? tokenIdentity(token.token) : undefined;
        if (identity) fromToken = { ...identity, source: TOKEN_SOURCE };
        return token;
      },
    },
    own: () => (fromToken ? [...configured, fromToken] : configured),
  };
}
