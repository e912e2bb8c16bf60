import type { types } from '@slack/bolt';

/** Slack's documented limits that the builders keep to. */
export const LIMITS = {
  blocks: 50,
  sectionText: 3000,
  fields: 10,
  fieldText: 2000,
  header: 150,
  buttonText: 75,
  buttonValue: 2000,
  confirmTitle: 100,
  confirmText: 300,
  confirmButton: 30,
  contextElements: 10,
  /** Recommended maximum of a message's top-level `text`. */
  text: 4000,
} as const;

/**
 * Slack's undocumented total for a message's blocks (`msg_blocks_too_long`): about 13,200
 * characters in one report (bolt-js #2509), a refusal at 11,341 counted text characters in another
 * (bolt-js #2867). The builders stay well below both.
 */
export const TOTAL_TEXT_BUDGET = 10_000;

const ID_MAX = 255;

type AnyText = { type?: string; text?: string } | undefined;

/**
 * Checks a message (or a modal's blocks) against Slack's size limits. Returns one line per
 * violation; empty when the message is within limits.
 */
export function checkMessageLimits(
  message: { text?: string; blocks: readonly types.KnownBlock[] },
  opts: { maxBlocks?: number } = {},
): string[] {
  const { problems, total } = inspect(message, opts);
  if (total > TOTAL_TEXT_BUDGET) problems.push(`blocks carry ${total} characters > ${TOTAL_TEXT_BUDGET}`);
  return problems;
}

function inspect(
  message: { text?: string; blocks: readonly types.KnownBlock[] },
  opts: { maxBlocks?: number },
): { problems: string[]; total: number } {
  const problems: string[] = [];
  const maxBlocks = opts.maxBlocks ?? LIMITS.blocks;
  let total = 0;
  const measure = (where: string, t: AnyText, max: number) => {
    if (!t || typeof t.text !== 'string') return;
    total += t.text.length;
    if (t.text.length > max) problems.push(`${where}: ${t.text.length} characters > ${max}`);
    if (t.text.length === 0) problems.push(`${where}: empty text`);
  };
  // Slack refuses a message that repeats a block_id, or an action_id (`invalid_blocks`).
  const seen = { block: new Set<string>(), action: new Set<string>() };
  const id = (where: string, value: string | undefined, kind: keyof typeof seen = 'action') => {
    if (value === undefined) return;
    if (value.length > ID_MAX) problems.push(`${where}: id longer than ${ID_MAX}`);
    if (seen[kind].has(value)) problems.push(`${where}: ${kind}_id ${value} repeats`);
    seen[kind].add(value);
  };

  if (message.text !== undefined && message.text.length > LIMITS.text) {
    problems.push(`text: ${message.text.length} characters > ${LIMITS.text}`);
  }
  if (message.blocks.length > maxBlocks) problems.push(`${message.blocks.length} blocks > ${maxBlocks}`);

  message.blocks.forEach((block, i) => {
    const at = `block ${i} (${block.type})`;
    id(at, block.block_id, 'block');
    switch (block.type) {
      case 'header':
        measure(at, block.text, LIMITS.header);
        break;
      case 'section': {
        measure(`${at} text`, block.text, LIMITS.sectionText);
        const fields = block.fields ?? [];
        if (fields.length > LIMITS.fields) problems.push(`${at}: ${fields.length} fields > ${LIMITS.fields}`);
        fields.forEach((f, j) => {
          measure(`${at} field ${j}`, f, LIMITS.fieldText);
        });
        if (!block.text && fields.length === 0) problems.push(`${at}: neither text nor fields`);
        if (block.accessory?.type === 'button') {
          const b = block.accessory;
          measure(`${at} accessory`, b.text, LIMITS.buttonText);
          id(`${at} accessory`, b.action_id);
          if (b.value !== undefined && b.value.length > LIMITS.buttonValue)
            problems.push(`${at}: button value too long`);
        }
        break;
      }
      case 'context':
        if (block.elements.length > LIMITS.contextElements) problems.push(`${at}: too many elements`);
        block.elements.forEach((e, j) => {
          if (e.type === 'mrkdwn' || e.type === 'plain_text')
            measure(`${at} element ${j}`, e, LIMITS.fieldText);
        });
        break;
      case 'actions':
        if (block.elements.length > 25) problems.push(`${at}: more than 25 elements`);
        block.elements.forEach((e, j) => {
          if (e.type !== 'button') return;
          measure(`${at} button ${j}`, e.text, LIMITS.buttonText);
          id(`${at} button ${j}`, e.action_id);
          if (e.value !== undefined && e.value.length > LIMITS.buttonValue) {
            problems.push(`${at} button ${j}: value ${e.value.length} > ${LIMITS.buttonValue}`);
          }
          if (e.confirm) {
            measure(`${at} confirm title`, e.confirm.title, LIMITS.confirmTitle);
            measure(`${at} confirm text`, e.confirm.text, LIMITS.confirmText);
            measure(`${at} confirm button`, e.confirm.confirm, LIMITS.confirmButton);
            measure(`${at} deny button`, e.confirm.deny, LIMITS.confirmButton);
          }
        });
        break;
      case 'input':
        measure(`${at} label`, block.label, 2000);
        id(`${at} input`, 'action_id' in block.element ? block.element.action_id : undefined);
        break;
      default:
        break;
    }
  });
  return { problems, total };
}

/** The characters of blocks that count towards `TOTAL_TEXT_BUDGET`, as `checkMessageLimits` counts them. */
export function blocksTextLength(blocks: readonly types.KnownBlock[]): number {
  return inspect({ blocks }, {}).total;
}
