import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { METHOD_SCOPES, requiredBotScopes } from '../../src/slack/scopes.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCHEMA = path.resolve(ROOT, '../shared/fixtures/slack/manifest.schema.1.0.0.json');

type Manifest = {
  features: { slash_commands: Array<{ command: string; url?: string }> };
  oauth_config: { scopes: { bot: string[] } };
  settings: { interactivity: { is_enabled: boolean; request_url?: string }; socket_mode_enabled: boolean };
};

const manifest = () => parse(readFileSync(path.join(ROOT, 'manifest.yml'), 'utf8')) as Manifest;

function validator() {
  // Slack's schema uses a non-standard `regex` keyword next to the standard ones: enforce it too.
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addKeyword({
    keyword: 'regex',
    type: 'string',
    schemaType: 'string',
    validate: (pattern: string, data: string) => new RegExp(pattern).test(data),
  });
  const addFormats = addFormatsModule as unknown as (a: Ajv) => Ajv;
  addFormats(ajv);
  return ajv.compile(JSON.parse(readFileSync(SCHEMA, 'utf8')));
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every `client.<group>.<method>(` call in src/slack (`postClient.…` too). */
function calledMethods(): Set<string> {
  const found = new Set<string>();
  for (const file of sources(path.join(ROOT, 'src/slack'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(
      /\b(?:client|[a-z][A-Za-z]*Client)\s*\.\s*((?:[a-z][A-Za-z]*\.)+[a-z][A-Za-z]*)\s*\(/g,
    )) {
      found.add(m[1]!);
    }
  }
  return found;
}

describe('manifest.yml', () => {
  it("validates against Slack's manifest JSON schema", () => {
    const validate = validator();
    const ok = validate(manifest());
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the validator rejects a misplaced key and a bad colour (the check has teeth)', () => {
    const validate = validator();
    const bad = manifest() as unknown as Record<string, Record<string, unknown>>;
    (bad.settings!.interactivity as Record<string, unknown>).bogus = true;
    expect(validate(bad)).toBe(false);
    const colour = manifest() as unknown as { display_information: { background_color: string } };
    colour.display_information.background_color = '#zzzzzz';
    expect(validate(colour)).toBe(false);
  });

  it('also validates as the Socket Mode variant described in it', () => {
    const m = manifest();
    m.settings.socket_mode_enabled = true;
    delete m.settings.interactivity.request_url;
    for (const c of m.features.slash_commands) delete c.url;
    expect(validator()(m)).toBe(true);
  });

  it('declares /arc-history and interactivity on /slack/events', () => {
    const m = manifest();
    expect(m.features.slash_commands.map((c) => c.command)).toEqual(['/arc-history']);
    expect(m.features.slash_commands[0]!.url).toMatch(/^https:\/\/.+\/slack\/events$/);
    expect(m.settings.interactivity).toMatchObject({ is_enabled: true });
    expect(m.settings.interactivity.request_url).toMatch(/\/slack\/events$/);
  });

  it('grants a bot scope for every Web API method the code calls', () => {
    const called = calledMethods();
    expect(called.size).toBeGreaterThanOrEqual(5);
    // Every call is in the method → scope table ...
    for (const method of called)
      expect(Object.keys(METHOD_SCOPES), `${method} missing from METHOD_SCOPES`).toContain(method);
    // ... the table lists nothing the code no longer calls ...
    for (const method of Object.keys(METHOD_SCOPES))
      expect([...called], `${method} is not called`).toContain(method);
    // ... and the manifest grants every scope the table needs, and nothing more.
    expect([...manifest().oauth_config.scopes.bot].sort()).toEqual(requiredBotScopes());
  });
});
