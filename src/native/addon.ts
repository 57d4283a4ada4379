// The native addon, loaded once at import: importing this module throws
// WEFT_E_NATIVE_NOT_BUILT when native/build/Release/weft_native.node is missing.
import { defaultAddonPath, loadAddon, type NativeAddon } from './load-addon.js';

export type {
  NativeAddon,
  RawOriginalDestination,
  RawSocketOwner,
  RawTcpListener,
} from './load-addon.js';
export { defaultAddonPath, loadAddon } from './load-addon.js';

export const addon: NativeAddon = loadAddon(defaultAddonPath);
