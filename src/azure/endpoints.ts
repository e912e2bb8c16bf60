import {
  DefaultAzureCredential,
  type DefaultAzureCredentialClientIdOptions,
  type TokenCredential,
} from '@azure/identity';
import type { Config } from '../config.ts';

/** The authority host of the public cloud; any other host turns instance discovery off. */
const PUBLIC_AUTHORITY_HOST = 'https://login.microsoftonline.com';

/**
 * The token scope for a service endpoint: its origin plus `/.default`. For the public cloud that
 * gives `https://management.azure.com/.default` and `https://graph.microsoft.com/.default`; a
 * sovereign cloud's endpoints give its own audiences (`https://management.chinacloudapi.cn/.default`).
 */
export function scopeForEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`not a URL: ${endpoint}`);
  }
  return `${url.origin}/.default`;
}

/** The endpoint without a trailing slash, refused unless it is https (bearer tokens never go over http). */
export function httpsBase(endpoint: string, name: string): string {
  const base = endpoint.replace(/\/+$/, '');
  if (!/^https:\/\/[^/\s]+/i.test(base)) {
    throw new Error(
      `${name} must be an https URL (bearer tokens are never sent over plain http): got ${endpoint}`,
    );
  }
  return base;
}

/** True when `host` is the public cloud's authority (trailing slashes and case ignored). */
export function isPublicAuthority(host: string | undefined): boolean {
  return host === undefined || host.replace(/\/+$/, '').toLowerCase() === PUBLIC_AUTHORITY_HOST;
}

/**
 * `DefaultAzureCredential` (environment, workload identity, managed identity, developer logins)
 * with the authority host from the configuration; a non-default host turns instance discovery off.
 * The credential reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` itself.
 */
export function createDefaultCredential(azure: Config['azure'], tlsCa?: string): TokenCredential {
  const options: DefaultAzureCredentialClientIdOptions = {};
  if (azure.authorityHost) {
    options.authorityHost = azure.authorityHost;
    if (!isPublicAuthority(azure.authorityHost)) options.disableInstanceDiscovery = true;
  }
  if (tlsCa) options.tlsOptions = { ca: tlsCa };
  return new DefaultAzureCredential(options);
}
