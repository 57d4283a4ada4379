// The few Reflect metadata functions that tsyringe (used inside @peculiar/x509) insists on at
// load time. They are not in the project's dependencies (reflect-metadata would be), so this
// minimal WeakMap-backed version stands in; import it before @peculiar/x509 (see ./x509.ts).

type MetadataTable = Map<PropertyKey | undefined, Map<unknown, unknown>>;
const tables = new WeakMap<object, MetadataTable>();

interface ReflectMetadata {
  defineMetadata(key: unknown, value: unknown, target: object, property?: PropertyKey): void;
  getOwnMetadata(key: unknown, target: object, property?: PropertyKey): unknown;
  getMetadata(key: unknown, target: object, property?: PropertyKey): unknown;
}

const reflect = Reflect as unknown as Partial<ReflectMetadata>;

if (typeof reflect.getMetadata !== 'function') {
  reflect.defineMetadata = (key, value, target, property) => {
    let table = tables.get(target);
    if (table === undefined) {
      table = new Map();
      tables.set(target, table);
    }
    let entries = table.get(property);
    if (entries === undefined) {
      entries = new Map();
      table.set(property, entries);
    }
    entries.set(key, value);
  };
  reflect.getOwnMetadata = (key, target, property) => tables.get(target)?.get(property)?.get(key);
  reflect.getMetadata = (key, target, property) => {
    // Metadata is inherited along the prototype chain, as reflect-metadata does it.
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      const value = tables.get(t)?.get(property)?.get(key);
      if (value !== undefined) return value;
    }
    return undefined;
  };
}
