// One spelling of a certificate serial number for deny lists: lowercase hex without leading
// zeros. Node prints serials in uppercase, @peculiar/x509 keeps the DER's leading zero byte;
// both name the same certificate, so every comparison goes through canonicalSerial.
export function canonicalSerial(hex: string): string {
  const s = hex.trim().toLowerCase().replace(/:/g, '').replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/** A serial as the deny list spells it: hex digits only, no leading zero. */
export const CANONICAL_SERIAL = /^(0|[1-9a-f][0-9a-f]*)$/;
