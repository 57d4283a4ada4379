// Which fields of an AuthorizationPolicy's `to` entry only an HTTP request has. Without zod: the
// agent's workers authorize with it but load no schema library (issue #15).

/** Fields that only an HTTP request has: at L4 they cannot be checked. */
export const HTTP_OPERATION_FIELDS = ['methods', 'paths', 'grpc'] as const;

type HttpOperationField = (typeof HTTP_OPERATION_FIELDS)[number];

/** The HTTP fields an entry of `to` sets (non-empty lists). */
export function httpFieldsOf(
  op: Partial<Record<HttpOperationField, readonly unknown[] | undefined>>,
): HttpOperationField[] {
  return HTTP_OPERATION_FIELDS.filter((f) => (op[f]?.length ?? 0) > 0);
}
