/* NightGrade's declaration of the OpenFX message suites V1 and V2, OpenFX 1.4 reference.
 * V2 starts with V1's function, so a host may hand the same struct for both versions; some hosts
 * (Resolve 14) hand a V2 whose persistent-message pointers are NULL: check before calling. */
#ifndef NIGHTGRADE_OFX_MESSAGE_H
#define NIGHTGRADE_OFX_MESSAGE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define kOfxMessageSuite "OfxMessageSuite"

#define kOfxMessageFatal "OfxMessageFatal"
#define kOfxMessageError "OfxMessageError"
#define kOfxMessageWarning "OfxMessageWarning"
#define kOfxMessageMessage "OfxMessageMessage"
#define kOfxMessageLog "OfxMessageLog"
#define kOfxMessageQuestion "OfxMessageQuestion"

typedef struct OfxMessageSuiteV1 {
  /** Transient message, printf-style; handle may be NULL. */
  OfxStatus (*message)(void *handle, const char *messageType, const char *messageId, const char *format, ...);
} OfxMessageSuiteV1;

typedef struct OfxMessageSuiteV2 {
  OfxStatus (*message)(void *handle, const char *messageType, const char *messageId, const char *format, ...);
  /** Message attached to an effect instance (error/warning/message) until cleared. */
  OfxStatus (*setPersistentMessage)(void *handle, const char *messageType, const char *messageId,
                                    const char *format, ...);
  OfxStatus (*clearPersistentMessage)(void *handle);
} OfxMessageSuiteV2;

#ifdef __cplusplus
}
#endif

#endif /* NIGHTGRADE_OFX_MESSAGE_H */
