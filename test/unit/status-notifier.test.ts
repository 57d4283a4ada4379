// STATUS= follows the agent (every accepted snapshot, every sync state) without sending a
// message per snapshot: at most one per interval, and the last of a burst is never lost.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { statusNotifier } from '../../src/agent/systemd.js';

describe('statusNotifier', () => {
  let sent: string[];
  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
  });
  afterEach(() => vi.useRealTimers());

  const notifier = () => statusNotifier((text) => sent.push(text), 1_000);

  it('sends the first update at once', () => {
    notifier().update('snapshot v1');
    expect(sent).toEqual(['snapshot v1']);
  });

  it('sends only the last update of a burst, when the interval ends', () => {
    const n = notifier();
    n.update('snapshot v1');
    n.update('snapshot v2');
    n.update('snapshot v3');
    expect(sent).toEqual(['snapshot v1']);
    vi.advanceTimersByTime(999);
    expect(sent).toEqual(['snapshot v1']);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual(['snapshot v1', 'snapshot v3']);
  });

  it('sends at once again after a quiet interval', () => {
    const n = notifier();
    n.update('snapshot v1');
    vi.advanceTimersByTime(5_000);
    n.update('snapshot v2');
    expect(sent).toEqual(['snapshot v1', 'snapshot v2']);
  });

  it('drops a repeat of the line already shown', () => {
    const n = notifier();
    n.update('snapshot v1');
    vi.advanceTimersByTime(5_000);
    n.update('snapshot v1');
    expect(sent).toEqual(['snapshot v1']);
    n.update('snapshot v2');
    n.update('snapshot v1');
    vi.advanceTimersByTime(5_000);
    expect(sent).toEqual(['snapshot v1', 'snapshot v2', 'snapshot v1']);
  });

  it('sends nothing pending after stop', () => {
    const n = notifier();
    n.update('snapshot v1');
    n.update('snapshot v2');
    n.stop();
    vi.advanceTimersByTime(5_000);
    expect(sent).toEqual(['snapshot v1']);
  });
});
