/**
 * Every Slack Web API method the app calls, with the bot scopes it needs (`null`: none; a list
 * when the scope depends on the kind of channel). `manifest.yml` must grant each scope listed; a
 * test greps `src/slack` for `client.<method>(` calls and checks that each one is in this table,
 * and that the manifest covers the table.
 */
export const METHOD_SCOPES: Readonly<Record<string, string | readonly string[] | null>> = {
  'auth.test': null,
  'chat.postMessage': 'chat:write',
  'chat.update': 'chat:write',
  // Public and private alert channels.
  'conversations.history': ['channels:history', 'groups:history'],
  'conversations.replies': ['channels:history', 'groups:history'],
  'views.open': null,
  'usergroups.users.list': 'usergroups:read',
};

/** Scopes the app needs that no Web API method implies (the slash command). */
const EXTRA_SCOPES: readonly string[] = ['commands'];

/** The bot scopes the app needs, sorted and without duplicates. */
export function requiredBotScopes(): string[] {
  const scopes = new Set<string>(EXTRA_SCOPES);
  for (const scope of Object.values(METHOD_SCOPES)) {
    if (typeof scope === 'string') scopes.add(scope);
    else if (scope) for (const one of scope) scopes.add(one);
  }
  return [...scopes].sort();
}
