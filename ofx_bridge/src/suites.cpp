#include "suites.h"

#include <string>

namespace nightgrade::ofx {

HostSuites& suites() {
  static HostSuites instance;
  return instance;
}

template <typename Suite>
static const Suite* fetch(const char* name, int version) {
  OfxHost* host = suites().host;
  if (host == nullptr || host->fetchSuite == nullptr) return nullptr;
  return static_cast<const Suite*>(host->fetchSuite(host->host, name, version));
}

bool fetch_suites() {
  HostSuites& s = suites();
  s.property = fetch<OfxPropertySuiteV1>(kOfxPropertySuite, 1);
  s.effect = fetch<OfxImageEffectSuiteV1>(kOfxImageEffectSuite, 1);
  s.param = fetch<OfxParameterSuiteV1>(kOfxParameterSuite, 1);
  s.memory = fetch<OfxMemorySuiteV1>(kOfxMemorySuite, 1);
  s.thread = fetch<OfxMultiThreadSuiteV1>(kOfxMultiThreadSuite, 1);
  s.message_v1 = fetch<OfxMessageSuiteV1>(kOfxMessageSuite, 1);
  s.message_v2 = fetch<OfxMessageSuiteV2>(kOfxMessageSuite, 2);
  const OfxPropertySuiteV1* p = s.property;
  const OfxImageEffectSuiteV1* e = s.effect;
  const OfxParameterSuiteV1* q = s.param;
  // Only the members the bridge calls are required; the rest may be NULL.
  return p && p->propSetPointer && p->propSetString && p->propSetDouble && p->propSetInt &&
         p->propSetStringN && p->propSetDoubleN && p->propSetIntN && p->propGetPointer &&
         p->propGetString && p->propGetDouble && p->propGetInt && p->propGetDoubleN && p->propGetIntN &&
         p->propGetDimension && e && e->getPropertySet && e->getParamSet && e->clipDefine &&
         e->clipGetHandle && e->clipGetPropertySet && e->clipGetImage && e->clipReleaseImage &&
         e->clipGetRegionOfDefinition && q && q->paramDefine && q->paramGetHandle &&
         q->paramGetPropertySet && q->paramGetValue && q->paramGetValueAtTime && q->paramSetValue;
}

void post_error(void* instance, const std::string& text) {
  const HostSuites& s = suites();
  if (instance == nullptr) return;
  if (s.message_v2 != nullptr && s.message_v2->setPersistentMessage != nullptr) {
    s.message_v2->setPersistentMessage(instance, kOfxMessageError, "", "%s", text.c_str());
  } else if (s.message_v2 != nullptr && s.message_v2->message != nullptr) {
    s.message_v2->message(instance, kOfxMessageError, "", "%s", text.c_str());
  } else if (s.message_v1 != nullptr && s.message_v1->message != nullptr) {
    s.message_v1->message(instance, kOfxMessageError, "", "%s", text.c_str());
  }
}

void clear_error(void* instance) {
  const HostSuites& s = suites();
  if (instance != nullptr && s.message_v2 != nullptr && s.message_v2->clearPersistentMessage != nullptr) {
    s.message_v2->clearPersistentMessage(instance);
  }
}

}  // namespace nightgrade::ofx
