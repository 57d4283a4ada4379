// HTTP/2 flow-control and framing sizes for the tunnel, shared by both ends. HTTP/2's default
// 64 KiB windows cap one stream at window/RTT and stall on every WINDOW_UPDATE round trip
// through both event loops; a tunnel stream must run close to a plain TCP connection.
// Measured on loopback (one 100 MB upload, separate client and server processes, medians):
// 64 KiB windows ran 103 MB/s at 8.1 CPU-s/GB for both ends together; 1 and 4 MiB about
// 185 MB/s at 3.9-4.5 CPU-s/GB; 16 MiB was slower (127 MB/s). The stream window also bounds what an unread stream buffers in
// memory, so 4 MiB: enough for a 10 Gbit/s link at 3 ms RTT.
import type { Settings } from 'node:http2';
import { WeftError } from '../../errors.js';

export interface FlowControl {
  /** SETTINGS_INITIAL_WINDOW_SIZE: what one stream may have in flight (and, unread, buffered). */
  streamWindowBytes: number;
  /** The session's receive window (all streams together), set with setLocalWindowSize. */
  connectionWindowBytes: number;
  /**
   * SETTINGS_MAX_FRAME_SIZE we accept (16 KiB to 16 MiB - 1). Node itself never sends DATA
   * frames over 16 KiB (nghttp2's default), so this only matters for other peers.
   */
  maxFrameBytes: number;
  /** Node's cap on one session's nghttp2 memory, in MB: above it the session is torn down. */
  maxSessionMemoryMb: number;
}

const MIB = 1024 * 1024;

export const DEFAULT_FLOW_CONTROL: FlowControl = {
  streamWindowBytes: 4 * MIB,
  connectionWindowBytes: 32 * MIB,
  maxFrameBytes: 64 * 1024,
  maxSessionMemoryMb: 256,
};

const MAX_WINDOW = 2 ** 31 - 1; // RFC 9113 section 6.9.1

/** Defaults overlaid with `partial`, each field checked; `where` names the option. */
export function flowControlOf(
  partial: Partial<FlowControl> | undefined,
  where: string,
): FlowControl {
  const fc = { ...DEFAULT_FLOW_CONTROL, ...partial };
  const check = (field: keyof FlowControl, min: number, max: number): void => {
    const v = fc[field];
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `${where}.flowControl.${field} must be an integer ${min}-${max}, got ${v}`,
      );
    }
  };
  check('streamWindowBytes', 65_535, MAX_WINDOW);
  check('connectionWindowBytes', 65_535, MAX_WINDOW);
  check('maxFrameBytes', 16_384, 16_777_215);
  check('maxSessionMemoryMb', 1, 65_536);
  return fc;
}

/** The SETTINGS a tunnel end sends. */
export function localSettings(fc: FlowControl, extra: Settings = {}): Settings {
  return {
    initialWindowSize: fc.streamWindowBytes,
    maxFrameSize: fc.maxFrameBytes,
    enablePush: false,
    ...extra,
  };
}
