// The terminal for `weft top`: the alternate screen with the cursor hidden and raw keys while
// it runs; each frame redraws in place (cursor home, each line then clear-to-end-of-line, then
// clear below), so nothing flickers; leaving restores everything, also on an error or a signal.
import type { ReadStream, WriteStream } from 'node:tty';

const ENTER = '\x1b[?1049h\x1b[?25l';
const LEAVE = '\x1b[?25h\x1b[?1049l';
const HOME = '\x1b[H';
const CLEAR_LINE = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';

export class TopTerminal {
  private active = false;
  private readonly restoreOnExit = () => this.leave();

  constructor(
    private readonly input: ReadStream,
    private readonly output: WriteStream,
  ) {}

  get width(): number {
    return this.output.columns || 80;
  }

  get height(): number {
    return this.output.rows || 24;
  }

  /** Takes the screen; `onQuit` runs on q, Q or Ctrl-C. */
  enter(onQuit: () => void, onResize: () => void): void {
    this.active = true;
    // Whatever ends the process, the terminal is given back first.
    process.once('exit', this.restoreOnExit);
    this.output.write(ENTER);
    this.input.setRawMode(true);
    this.input.resume();
    this.input.on('data', (key: Buffer) => {
      const k = key.toString('utf8');
      if (k === 'q' || k === 'Q' || k === '\x03') onQuit();
    });
    this.output.on('resize', onResize);
  }

  draw(lines: string[]): void {
    if (!this.active) return;
    this.output.write(`${HOME}${lines.map((l) => `${l}${CLEAR_LINE}`).join('\r\n')}${CLEAR_BELOW}`);
  }

  /** Gives the terminal back: cursor shown, main screen, raw mode off. Safe to call twice. */
  leave(): void {
    if (!this.active) return;
    this.active = false;
    process.off('exit', this.restoreOnExit);
    try {
      this.input.setRawMode(false);
    } catch {
      // the terminal is gone already: nothing to restore on it
    }
    this.input.pause();
    this.output.write(LEAVE);
  }
}
