// malloc_trim(3): hands the C heap's free pages back to the kernel. After a burst of traffic the
// agent's freed TLS, HTTP/2 and socket buffers stay resident in glibc's heap (measured: 128 of
// an idle agent's 259 MiB), since free() only returns memory above the heap's last used chunk.
#pragma once

#include <napi.h>

namespace weft {

// mallocTrim(): true when memory was released; false when none was (or not built on glibc).
Napi::Value MallocTrim(const Napi::CallbackInfo& info);

}  // namespace weft
