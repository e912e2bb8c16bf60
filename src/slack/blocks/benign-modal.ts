import type { types } from '@slack/bolt';
import type { AlertRecord } from '../../core/alert.ts';
import { callerKind } from '../../core/remediation-plan.ts';
import type { BenignMark } from '../alert-state.ts';
import { BENIGN_MODAL, CALLBACK_IDS } from '../ids.ts';
import { clip, code, isoTime, literal, mrkdwn } from './text.ts';

/** The expiry choices of Mark benign, by option value. `undefined`: never expires. */
const EXPIRY_OPTIONS: ReadonlyArray<{ value: string; label: string; ms: number | undefined }> = [
  { value: '24h', label: '24 hours', ms: 24 * 3600 * 1000 },
  { value: '7d', label: '7 days', ms: 7 * 24 * 3600 * 1000 },
  { value: '30d', label: '30 days', ms: 30 * 24 * 3600 * 1000 },
  { value: 'never', label: 'Never', ms: undefined },
];

/** Longest accepted reason. */
const REASON_MAX = 500;

/** The modal's `private_metadata`: which alert it is about, and where the button was pressed. */
export interface BenignModalMetadata {
  alertId: string;
  /** The channel of the Mark benign click (Slack does not let users change private_metadata). */
  channel?: string;
}

const option = (o: { value: string; label: string }): types.PlainTextOption => ({
  text: { type: 'plain_text', text: o.label },
  value: o.value,
});

/** A Mark benign modal that only says `text`: where a submission's outcome is shown when it came late. */
export function benignNotice(text: string): types.ModalView {
  return {
    type: 'modal',
    title: { type: 'plain_text', text: 'Mark benign' },
    close: { type: 'plain_text', text: 'Close' },
    blocks: [{ type: 'section', text: mrkdwn(clip(text, 3000)) }],
  };
}

/**
 * The Mark benign modal: a required reason and an expiry (24 hours, 7 days, 30 days, never). With
 * the alert's Mark benign still in force (`current`), it says so and starts from its reason.
 */
export function buildBenignModal(
  alert: AlertRecord,
  channel?: string,
  current?: BenignMark,
): types.ModalView {
  const d = alert.detection;
  const now = Date.now();
  const inForce =
    current !== undefined &&
    current.removed === undefined &&
    (current.until === undefined || current.until > now);
  const currently = inForce
    ? `\n\nCurrently marked benign by <@${current.by}>, ${current.until === undefined ? 'with no expiry' : `until ${isoTime(current.until)}`}. Submitting replaces the reason and the expiry.`
    : '';
  // A user signs in through a client application (the Azure CLI, say): the appid is that client's,
  // which every user of it shares, so the entry holds back their detections from this IP too.
  const shared =
    callerKind(d) === 'user'
      ? `\n\n:warning: The caller is a user (${clip(literal(d.user?.upn ?? d.principalId ?? 'unnamed'), 200)}), and ${code(d.appId, 120)} is the client application it signed in through: every user of that client shares it, so this entry also holds back other users' detections from this IP.`
      : '';
  const metadata: BenignModalMetadata = { alertId: alert.id, ...(channel ? { channel } : {}) };
  return {
    type: 'modal',
    callback_id: CALLBACK_IDS.markBenign,
    private_metadata: JSON.stringify(metadata),
    title: { type: 'plain_text', text: 'Mark benign' },
    submit: { type: 'plain_text', text: 'Allowlist' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      {
        type: 'section',
        text: mrkdwn(
          clip(
            `Allowlist ${code(d.appId, 120)} from ${code(d.sourceIp, 60)}: later detections of this pair do not alert while the entry lasts, *on every cluster* (this one was on ${clip(literal(d.cluster?.name ?? d.cluster?.id ?? 'an unknown cluster'), 300)}).${shared}${currently}`,
            3000,
          ),
        ),
      },
      {
        type: 'input',
        block_id: BENIGN_MODAL.reasonBlock,
        label: { type: 'plain_text', text: 'Why is it benign?' },
        element: {
          type: 'plain_text_input',
          action_id: BENIGN_MODAL.reasonInput,
          multiline: true,
          min_length: 1,
          max_length: REASON_MAX,
          ...(inForce ? { initial_value: current.reason.slice(0, REASON_MAX) } : {}),
          placeholder: { type: 'plain_text', text: 'e.g. new CI runner pool in westeurope, ticket OPS-123' },
        },
      },
      {
        type: 'input',
        block_id: BENIGN_MODAL.expiryBlock,
        label: { type: 'plain_text', text: 'Allowlist for' },
        element: {
          type: 'static_select',
          action_id: BENIGN_MODAL.expiryInput,
          options: EXPIRY_OPTIONS.map(option),
          initial_option: option(EXPIRY_OPTIONS[1]!),
        },
      },
    ],
  };
}

/** The modal's answers after validation, or an error per block for `response_action: errors`. */
export type BenignSubmission =
  | { ok: true; reason: string; expiry: string; expiryMs: number | undefined }
  | { ok: false; errors: Record<string, string> };

/** Validates the submitted modal state: reason required (not only spaces), expiry one of the choices. */
export function parseBenignSubmission(values: unknown): BenignSubmission {
  const v = (values ?? {}) as Record<
    string,
    Record<string, { value?: unknown; selected_option?: { value?: unknown } }>
  >;
  const reasonRaw = v[BENIGN_MODAL.reasonBlock]?.[BENIGN_MODAL.reasonInput]?.value;
  const expiryRaw = v[BENIGN_MODAL.expiryBlock]?.[BENIGN_MODAL.expiryInput]?.selected_option?.value;
  const errors: Record<string, string> = {};
  const reason = typeof reasonRaw === 'string' ? reasonRaw.trim() : '';
  if (reason === '')
    errors[BENIGN_MODAL.reasonBlock] = 'Give a reason: it is shown on the alert and in the audit.';
  else if (reason.length > REASON_MAX) errors[BENIGN_MODAL.reasonBlock] = `At most ${REASON_MAX} characters.`;
  const choice = EXPIRY_OPTIONS.find((o) => o.value === expiryRaw);
  if (!choice) errors[BENIGN_MODAL.expiryBlock] = 'Choose how long: 24 hours, 7 days, 30 days or never.';
  if (Object.keys(errors).length > 0 || !choice) return { ok: false, errors };
  return { ok: true, reason, expiry: choice.value, expiryMs: choice.ms };
}

/** Reads the modal's metadata; undefined when it is not ours. */
export function parseBenignMetadata(raw: unknown): BenignModalMetadata | undefined {
  if (typeof raw !== 'string' || raw.length > 3000) return undefined;
  try {
    const m = JSON.parse(raw) as { alertId?: unknown; channel?: unknown };
    if (typeof m.alertId !== 'string') return undefined;
    return { alertId: m.alertId, ...(typeof m.channel === 'string' ? { channel: m.channel } : {}) };
  } catch {
    return undefined;
  }
}
