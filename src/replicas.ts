import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from './config.ts';
import { formatDuration } from './core/duration.ts';
import { LEARNING_REPLACED_KEY } from './core/learning-period.ts';
import type { MemberSets, Values } from './core/ports.ts';
import type { Logger } from './log.ts';

/** The settings that replicas sharing a store must agree on, by the variable that sets each. */
type Settings = Record<string, string>;

/** What each replica keeps in the store about itself while it runs. */
interface ReplicaRecord {
  host: string;
  pid: number;
  settings: Settings;
  /**
   * What it reads from the store while it runs that older releases read only at their start:
   * `learning-end`, a learning period's end brought forward by another start.
   */
  reads?: string[];
}

/** See `ReplicaRecord.reads`. */
const READS = ['learning-end'];

/**
 * Whether a replica reads a learning period's end brought forward while it runs: it says so, or it
 * records `SLACK_HISTORY`, which the same release began to record. A replica without Slack of that
 * release records neither, and is named as one that may not.
 */
const readsLearningEnd = (other: ReplicaRecord): boolean =>
  other.reads?.includes('learning-end') === true || other.settings.SLACK_HISTORY !== undefined;

const MEMBERS = 'meta:replicas';
const recordKey = (id: string) => `meta:replica:${id}`;

/** SLACK_ALERT_CHANNEL of a replica without Slack. */
const NO_SLACK = '(no Slack)';
/** The settings a replica records only when it runs Slack. */
const SLACK_ONLY = new Set(['SLACK_RESPONDERS', 'SLACK_ALLOWLIST', 'SLACK_HISTORY']);

/**
 * The settings that decide what the service does with a detection or a click. Replicas that
 * differ in them judge the same pair differently, post to different channels, or revoke in one
 * mode and not the other, depending on which replica takes a request.
 */
export function sharedSettings(config: Config): Settings {
  const settings: Settings = {
    HISTORY_WINDOW: formatDuration(config.historyWindowMs),
    AZURE_REMEDIATION: config.azure.remediation,
    SLACK_ALERT_CHANNEL: config.slack?.alertChannel ?? NO_SLACK,
  };
  if (config.slack) {
    settings.SLACK_RESPONDERS = [...config.slack.responders].sort().join(',') || '(nobody)';
    settings.SLACK_ALLOWLIST = config.slack.allowlistBy;
    settings.SLACK_HISTORY = config.slack.historyBy;
  }
  return settings;
}

/**
 * Settings that an older replica does not record, as it runs with them: its behaviour is the
 * default, so a rolling upgrade names no difference.
 */
const UNRECORDED: Readonly<Record<string, string>> = { SLACK_HISTORY: 'anyone' };

export interface ReplicaWatch {
  /**
   * Said when another replica on the store runs with other settings, or cannot follow what this
   * one changed; empty otherwise.
   */
  warnings(): string[];
  stop(): Promise<void>;
}

/**
 * Each replica keeps a record of its settings in the store, renewed every `everyMs` and expiring
 * a few periods after its replica stops. At each renewal it reads the others' and compares: a
 * difference is logged once (when it appears) and stays in `warnings()` (for `/readyz`) while it
 * lasts. A stop removes its record, so only replicas running together are compared (a process
 * that crashed leaves its record for up to three periods). Failures of the store are left to the
 * rest of the service to report.
 */
export async function watchReplicas(
  store: Values & MemberSets,
  settings: Settings,
  logger: Logger,
  opts: {
    everyMs?: number;
    now?: () => number;
    /** The end of a learning period this start ended early: kept here too, should the store lose it. */
    learningReplacedEnd?: number;
  } = {},
): Promise<ReplicaWatch> {
  const everyMs = opts.everyMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const id = randomUUID();
  const self: ReplicaRecord = { host: hostname(), pid: process.pid, settings, reads: READS };
  let current: string[] = [];
  /** What was last said of each kind: each is logged once, when it appears or changes. */
  let saidLearning = '';
  let saidSettings = '';

  async function renew(): Promise<void> {
    await store.set(recordKey(id), self, everyMs * 3);
    await store.addMembers(MEMBERS, [id]);
    const ids = (await store.members(MEMBERS)).filter((other) => other !== id);
    // The records, and the end of a learning period that a start ended early (LEARNING_PERIOD=0):
    // a replica of a release that reads its end only at its start keeps learning until it.
    const [replaced, ...records] = await store.getMany<unknown>([
      LEARNING_REPLACED_KEY,
      ...ids.map(recordKey),
    ]);
    const gone = ids.filter((_, i) => records[i] === undefined);
    if (gone.length > 0) await store.removeMembers(MEMBERS, gone);
    const learningEnd = typeof replaced === 'number' ? replaced : opts.learningReplacedEnd;
    const differences: string[] = [];
    const stillLearning: string[] = [];
    for (const other of records as Array<ReplicaRecord | undefined>) {
      if (other === undefined || typeof other.settings !== 'object' || other.settings === null) continue;
      const who = `${String(other.host)} (pid ${Number(other.pid)})`;
      if (learningEnd !== undefined && learningEnd > now() && !readsLearningEnd(other)) {
        stillLearning.push(who);
      }
      const theirs = (name: string) => other.settings[name] ?? UNRECORDED[name];
      // Slack's settings matter between replicas that both run Slack: that one of them does not
      // is said once, by SLACK_ALERT_CHANNEL.
      const bothSlack =
        settings.SLACK_ALERT_CHANNEL !== NO_SLACK && theirs('SLACK_ALERT_CHANNEL') !== NO_SLACK;
      const differing = Object.keys(settings)
        .filter((name) => bothSlack || !SLACK_ONLY.has(name))
        .filter((name) => theirs(name) !== settings[name])
        .map((name) => `${name} ${settings[name]} here, ${String(theirs(name) ?? '(unset)')} there`);
      if (differing.length > 0) {
        differences.push(`${who}: ${differing.join('; ')}`);
      }
    }
    const learning =
      stillLearning.length === 0
        ? ''
        : `replicas of an earlier release share this store and may not read that LEARNING_PERIOD=0 ended the learning period (those of releases before it record new pairs without alerting until ${new Date(learningEnd!).toISOString()}); restart them on this release: ${stillLearning.join(', ')}`;
    const settingsDiffer =
      differences.length === 0
        ? ''
        : `replicas sharing this store run with other settings, so what happens to a detection or a click depends on which replica takes it; give every replica the same: ${differences.join(' | ')}`;
    // Detections that go unalerted are an error.
    if (learning !== '' && learning !== saidLearning) logger.error(learning);
    if (settingsDiffer !== '' && settingsDiffer !== saidSettings) logger.warn(settingsDiffer);
    saidLearning = learning;
    saidSettings = settingsDiffer;
    current = [learning, settingsDiffer].filter((text) => text !== '');
  }

  let stopped = false;
  let renewing: Promise<void> = Promise.resolve();
  const tick = () => {
    if (stopped) return renewing;
    renewing = renew().catch((err: unknown) => {
      logger.debug({ err: (err as Error).message }, 'could not compare settings with the other replicas');
    });
    return renewing;
  };
  await tick();
  const timer = setInterval(() => void tick(), everyMs);
  timer.unref();
  return {
    warnings: () => current,
    async stop() {
      stopped = true;
      clearInterval(timer);
      // A renewal under way would write the record again after it is removed.
      await renewing;
      await store.delete(recordKey(id)).catch(() => undefined);
      await store.removeMembers(MEMBERS, [id]).catch(() => undefined);
    },
  };
}
