import type { TokenCredential } from '@azure/identity';
import { dashGuid } from '../core/azure-ids.ts';
import type { OwnIdentity } from '../core/remediation-plan.ts';

/** Where the identity of the service's own tokens comes from, as a plan's alarm names it. */
const TOKEN_SOURCE = 'named by its own access tokens';

/** How many identities named by the service's tokens are kept; the one named longest ago goes first. */
const MAX_TOKEN_IDENTITIES = 8;

/**
 * Whether the claims are a delegated token's, issued to a user (a developer login): `idtyp: user`,
 * or a `scp`, `upn` or `unique_name` claim. An app-only token has none of them.
 */
const isUserToken = (claims: Record<string, unknown>): boolean =>
  claims.idtyp === 'user' || ['scp', 'upn', 'unique_name'].some((claim) => claims[claim] !== undefined);

/**
 * The identity an access token was issued to. An app-only token names it by its `appid` (v1
 * tokens) or `azp` (v2) claim and its `oid`. A token issued to a user names it by its `oid` only:
 * its `appid` is the client application the user signed in through (the Azure CLI's, say), which
 * every other user of that client shares. The payload is read without checking the signature: the
 * token is the service's own, from its own credential. Undefined for a token that is no JWT or
 * names neither.
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
  const named = claims as Record<string, unknown>;
  const appId = isUserToken(named) ? undefined : (dashGuid(named.appid) ?? dashGuid(named.azp));
  const objectId = dashGuid(named.oid);
  if (!appId && !objectId) return undefined;
  return { ...(appId ? { appId } : {}), ...(objectId ? { objectId } : {}) };
}

/**
 * The credential, watched: it reads who each token it obtains (for ARM or Graph) was issued to, so
 * that the service knows its own identity, a managed identity's included, without a request of
 * its own. `own()` gives `AZURE_CLIENT_ID` (when a GUID) and every identity its tokens have named
 * (the last `MAX_TOKEN_IDENTITIES` of them).
 */
export function watchOwnIdentity(
  credential: TokenCredential,
  clientId: string | undefined,
): { credential: TokenCredential; own: () => OwnIdentity[] } {
  const configured: OwnIdentity[] = clientId ? [{ appId: clientId, source: 'AZURE_CLIENT_ID' }] : [];
  // By appid and object id, in the order last named.
  const fromTokens = new Map<string, OwnIdentity>();
  return {
    credential: {
      async getToken(scopes, options) {
        const token = await credential.getToken(scopes, options);
        const identity = token ? tokenIdentity(token.token) : undefined;
        if (identity) {
          const key = `${identity.appId ?? ''}/${identity.objectId ?? ''}`;
          fromTokens.delete(key);
          fromTokens.set(key, { ...identity, source: TOKEN_SOURCE });
          const oldest = fromTokens.keys().next().value;
          if (fromTokens.size > MAX_TOKEN_IDENTITIES && oldest !== undefined) fromTokens.delete(oldest);
        }
        return token;
      },
    },
    own: () => [...configured, ...fromTokens.values()],
  };
}
