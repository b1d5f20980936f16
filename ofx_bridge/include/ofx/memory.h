/* NightGrade's declaration of the OpenFX memory suite (OfxMemorySuiteV1), OpenFX 1.4 reference. */
#ifndef NIGHTGRADE_OFX_MEMORY_H
#define NIGHTGRADE_OFX_MEMORY_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define kOfxMemorySuite "OfxMemorySuite"

/** General-purpose memory from the host's pool; `handle` may be an effect handle or NULL. */
typedef struct OfxMemorySuiteV1 {
  OfxStatus (*memoryAlloc)(void *handle, size_t nBytes, void **allocatedData);
  OfxStatus (*memoryFree)(void *allocatedData);
} OfxMemorySuiteV1;

#ifdef __cplusplus
}
#endif

#endif /* NIGHTGRADE_OFX_MEMORY_H */
