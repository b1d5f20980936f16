/* NightGrade's declaration of the OpenFX multi-thread suite (OfxMultiThreadSuiteV1), OpenFX 1.4
 * reference. Function-pointer order is the ABI. */
#ifndef NIGHTGRADE_OFX_MULTITHREAD_H
#define NIGHTGRADE_OFX_MULTITHREAD_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define kOfxMultiThreadSuite "OfxMultiThreadSuite"

typedef struct OfxMutex *OfxMutexHandle;

/** Body run by multiThread in each of threadMax threads. */
typedef void(OfxThreadFunctionV1)(unsigned int threadIndex, unsigned int threadMax, void *customArg);

typedef struct OfxMultiThreadSuiteV1 {
  /** Runs func in nThreads threads and returns when all have finished. */
  OfxStatus (*multiThread)(OfxThreadFunctionV1 func, unsigned int nThreads, void *customArg);
  OfxStatus (*multiThreadNumCPUs)(unsigned int *nCPUs);
  OfxStatus (*multiThreadIndex)(unsigned int *threadIndex);
  /** 1 when called from a thread that multiThread spawned, else 0. */
  int (*multiThreadIsSpawnedThread)(void);
  OfxStatus (*mutexCreate)(OfxMutexHandle *mutex, int lockCount);
  OfxStatus (*mutexDestroy)(const OfxMutexHandle mutex);
  OfxStatus (*mutexLock)(const OfxMutexHandle mutex);
  OfxStatus (*mutexUnLock)(const OfxMutexHandle mutex);
  /** kOfxStatOK when the lock was taken, kOfxStatFailed when it is held elsewhere. */
  OfxStatus (*mutexTryLock)(const OfxMutexHandle mutex);
} OfxMultiThreadSuiteV1;

#ifdef __cplusplus
}
#endif

#endif /* NIGHTGRADE_OFX_MULTITHREAD_H */
