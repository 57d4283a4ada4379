// malloc_trim(0) through N-API; see malloc-trim.h for why.
#include "malloc-trim.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace weft {

Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  // Pad 0: release everything free, not only the top of the heap (glibc >= 2.8 also
  // madvises free pages in the middle of every arena).
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace weft
