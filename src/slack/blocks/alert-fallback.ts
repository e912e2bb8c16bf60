/**
 * The alert in plainer forms, for when Slack refuses the full message: its text in plain sections
 * with the same buttons, or its text alone.
 */
import type { types } from '@slack/bolt';
import { type SlackMessage, section } from './alert.ts';
import { LIMITS, TOTAL_TEXT_BUDGET } from './limits.ts';
import { clip } from './text.ts';

/**
 * The alert in its plainest form, for when Slack refuses the full message (`invalid_blocks`,
 * `msg_too_long`): its text in sections of plain lines, with links reduced to their labels and
 * every field kept, and the same buttons. What Slack objected to in the layout is gone; the
 * facts and the actions stay.
 */
export function plainAlertMessage(full: SlackMessage): SlackMessage {
  const text = flatText(full);
  const sections: types.KnownBlock[] = [];
  // Cut at line ends into sections of at most Slack's limit; the message keeps to its total.
  let current = '';
  for (const line of text.split('\n')) {
    const next = current === '' ? line : `${current}\n${line}`;
    if (next.length <= LIMITS.sectionText - 100) {
      current = next;
      continue;
    }
    if (current !== '') sections.push(section(current));
    current = clip(line, LIMITS.sectionText - 100);
  }
  if (current !== '') sections.push(section(current));
  const actions = full.blocks.filter((b) => b.type === 'actions');
  let budget = TOTAL_TEXT_BUDGET - 2000;
  const kept = sections.filter((b) => {
    budget -= (b as types.SectionBlock).text?.text.length ?? 0;
    return budget >= 0;
  });
  return {
    text: clip(unlinked(full.text), LIMITS.text),
    blocks: [...kept.slice(0, LIMITS.blocks - actions.length), ...actions],
  };
}

/**
 * The last resort, for when Slack refuses the plain form too (the buttons themselves, say): the
 * alert's facts as the message's text alone, no blocks, saying why it has no buttons.
 */
export function textOnlyAlertMessage(full: SlackMessage, alertId: string): SlackMessage {
  const note = `\n:warning: Slack refused this alert's layout, so it shows no buttons: the service log names alert ${alertId}; /arc-history lists the pair.`;
  return { text: `${clip(flatText(full), LIMITS.text - note.length)}${note}`, blocks: [] };
}

/** The text of every header, section and context of a message, a line each, links unlinked. */
function flatText(message: SlackMessage): string {
  const lines: string[] = [];
  for (const block of message.blocks) {
    if (block.type === 'header') lines.push(`*${block.text.text}*`);
    else if (block.type === 'section') {
      if (block.text) lines.push(block.text.text);
      for (const field of block.fields ?? []) lines.push(field.text);
    } else if (block.type === 'context') {
      for (const element of block.elements) if ('text' in element) lines.push(element.text);
    }
  }
  return unlinked(lines.join('\n'));
}

/** Slack links (`<url|label>`) as their labels, and bare `<url>` as the URL; mentions stay. */
function unlinked(text: string): string {
  return text
    .replace(/<([^<>|@#!][^<>|]*)\|([^<>]*)>/g, '$2')
    .replace(/<((?:https?|mailto):[^<>|]*)>/g, '$1');
}
