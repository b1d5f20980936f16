// The host's suites, fetched once in the load action. Every pointer may be NULL (a host may lack a
// suite or hand one with NULL members): callers check before use.
#pragma once

#include <string>

#include "ofx/core.h"
#include "ofx/image_effect.h"
#include "ofx/memory.h"
#include "ofx/message.h"
#include "ofx/multithread.h"
#include "ofx/param.h"
#include "ofx/property.h"

namespace nightgrade::ofx {

struct HostSuites {
  OfxHost* host = nullptr;
  const OfxPropertySuiteV1* property = nullptr;
  const OfxImageEffectSuiteV1* effect = nullptr;
  const OfxParameterSuiteV1* param = nullptr;
  const OfxMemorySuiteV1* memory = nullptr;
  const OfxMultiThreadSuiteV1* thread = nullptr;
  const OfxMessageSuiteV1* message_v1 = nullptr;
  const OfxMessageSuiteV2* message_v2 = nullptr;
};

// The process-wide suites; written by setHost/load only, read by every other action.
HostSuites& suites();

// Fetches the suites from the host set by setHost. Returns false when a suite the bridge cannot
// work without (property, image effect, parameter) is missing or has NULL members it calls.
bool fetch_suites();

// Posts a persistent error on the instance (message suite V2), falling back to a transient
// message (V1) when the host's V2 lacks it. Never throws.
void post_error(void* instance, const std::string& text);

// Clears the instance's persistent message where the host supports it. Never throws.
void clear_error(void* instance);

}  // namespace nightgrade::ofx
