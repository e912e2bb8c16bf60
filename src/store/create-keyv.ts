import { Keyv, type KeyvStoreAdapter } from 'keyv';
import { deserializeKeyvData, serializeKeyvData } from './keyv-json.ts';

/**
 * Builds the Keyv instance every backend uses: Keyv's own on-disk format through the fast
 * serialiser, and errors thrown to the caller. By default Keyv turns a failed read into a miss,
 * which here would make a known pair look new (or, worse, a failed write look done).
 *
 * Keyv does not prefix keys here: its `set` skips the prefix for a key that already starts with
 * `<namespace>:` while its `getMany` always adds it, so such a key would be written and read at
 * two different places. `KeyvStateStore` prefixes every key itself, the same way each time, into
 * the layout Keyv uses (`<namespace>:<key>`; @keyv/redis adds its own `<namespace>::`). Keyv
 * still hands the namespace to the adapter, which limits `clear()` to it.
 */
export function createKeyv(store: KeyvStoreAdapter | Map<unknown, unknown>, namespace: string): Keyv {
  const keyv = new Keyv({
    store,
    namespace,
    useKeyPrefix: false,
    throwOnErrors: true,
    serialize: serializeKeyvData,
    deserialize: deserializeKeyvData,
  });
  // The same failures reach the caller as rejections; this listener only keeps Keyv's error
  // event (and the adapters' events it forwards) from having nobody to go to.
  keyv.on('error', () => {});
  return keyv;
}
