#include "host_suites.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>

#include "host_effect.h"
#include "host_log.h"
#include "ofx/memory.h"
#include "ofx/message.h"
#include "ofx/multithread.h"

namespace testhost {

namespace {
int g_violations = 0;
std::mutex g_log_mutex;
}  // namespace

void log_line(const std::string& key, const std::string& rest) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string line = key + " " + rest;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::cout << line << std::endl;
}

void log_violation(const std::string& what) {
  ++g_violations;
  log_line("VIOLATION", what);
}

int violation_count() { return g_violations; }

namespace {

std::string format(const char* fmt, va_list args) {
  if (fmt == nullptr) return "(null format)";
  char text[4096];
  std::vsnprintf(text, sizeof text, fmt, args);
  return text;
}

OfxStatus message(void* handle, const char* type, const char* /*id*/, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  const std::string text = format(fmt, args);
  va_end(args);
  log_line("MESSAGE", std::string(type ? type : "?") + " " + (handle ? "" : "(no handle) ") + text);
  return kOfxStatOK;
}

OfxStatus setPersistentMessage(void* handle, const char* type, const char* /*id*/, const char* fmt, ...) {
  if (handle == nullptr) return kOfxStatErrBadHandle;
  va_list args;
  va_start(args, fmt);
  const std::string text = format(fmt, args);
  va_end(args);
  log_line("PERSISTENT", std::string(type ? type : "?") + " " + text);
  return kOfxStatOK;
}

OfxStatus clearPersistentMessage(void* handle) {
  if (handle == nullptr) return kOfxStatErrBadHandle;
  log_line("CLEAR", "persistent message");
  return kOfxStatOK;
}

const OfxMessageSuiteV2 kMessageV2 = {message, setPersistentMessage, clearPersistentMessage};
// Resolve 14 handed a V2 suite whose persistent-message members were NULL.
const OfxMessageSuiteV2 kMessageV2Broken = {message, nullptr, nullptr};

OfxStatus memoryAlloc(void*, size_t bytes, void** data) {
  if (data == nullptr) return kOfxStatErrBadHandle;
  *data = std::malloc(bytes == 0 ? 1 : bytes);
  return *data ? kOfxStatOK : kOfxStatErrMemory;
}

OfxStatus memoryFree(void* data) {
  std::free(data);
  return kOfxStatOK;
}

const OfxMemorySuiteV1 kMemory = {memoryAlloc, memoryFree};

// A single-threaded host: multiThread runs the function for each index in turn.
OfxStatus multiThread(OfxThreadFunctionV1 func, unsigned int n, void* arg) {
  for (unsigned int i = 0; i < n; ++i) func(i, n, arg);
  return kOfxStatOK;
}
OfxStatus numCPUs(unsigned int* n) {
  *n = 1;
  return kOfxStatOK;
}
OfxStatus threadIndex(unsigned int* i) {
  *i = 0;
  return kOfxStatOK;
}
int isSpawned() { return 0; }
OfxStatus mutexCreate(OfxMutexHandle* m, int) {
  *m = reinterpret_cast<OfxMutexHandle>(new std::recursive_mutex);
  return kOfxStatOK;
}
OfxStatus mutexDestroy(const OfxMutexHandle m) {
  delete reinterpret_cast<std::recursive_mutex*>(m);
  return kOfxStatOK;
}
OfxStatus mutexLock(const OfxMutexHandle m) {
  reinterpret_cast<std::recursive_mutex*>(m)->lock();
  return kOfxStatOK;
}
OfxStatus mutexUnLock(const OfxMutexHandle m) {
  reinterpret_cast<std::recursive_mutex*>(m)->unlock();
  return kOfxStatOK;
}
OfxStatus mutexTryLock(const OfxMutexHandle m) {
  return reinterpret_cast<std::recursive_mutex*>(m)->try_lock() ? kOfxStatOK : kOfxStatFailed;
}

const OfxMultiThreadSuiteV1 kThreads = {multiThread, numCPUs, threadIndex, isSpawned, mutexCreate,
                                        mutexDestroy, mutexLock, mutexUnLock, mutexTryLock};

PropertySet& host_props() {
  static PropertySet p("host");
  static bool filled = false;
  if (!filled) {
    filled = true;
    p.set_string(kOfxPropType, {kOfxTypeImageEffectHost});
    p.set_string(kOfxPropName, {"com.nightgrade.testhost"});
    p.set_string(kOfxPropLabel, {"NightGrade test host"});
    p.set_int(kOfxPropAPIVersion, {1, 4});
    p.set_int(kOfxPropVersion, {1, 0});
    p.set_string(kOfxPropVersionLabel, {"1.0"});
    p.set_int(kOfxImageEffectHostPropIsBackground, {0});
    p.set_int(kOfxImageEffectPropSupportsOverlays, {0});
    p.set_int(kOfxImageEffectPropSupportsMultiResolution, {1});
    p.set_int(kOfxImageEffectPropSupportsTiles, {1});
    p.set_int(kOfxImageEffectPropTemporalClipAccess, {1});
    p.set_string(kOfxImageEffectPropSupportedComponents, {kOfxImageComponentRGBA, kOfxImageComponentRGB});
    p.set_string(kOfxImageEffectPropSupportedContexts, {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral});
    p.set_string(kOfxImageEffectPropSupportedPixelDepths,
                 {kOfxBitDepthFloat, kOfxBitDepthHalf, kOfxBitDepthShort, kOfxBitDepthByte});
    p.set_int(kOfxImageEffectPropSupportsMultipleClipDepths, {0});
    p.set_int(kOfxImageEffectPropSupportsMultipleClipPARs, {0});
    p.set_int(kOfxParamHostPropMaxPages, {-1});
  }
  return p;
}

const void* fetchSuite(OfxPropertySetHandle host, const char* name, int version) {
  if (host != host_props().handle() || name == nullptr) {
    log_violation("fetchSuite called with a foreign host handle");
    return nullptr;
  }
  const std::string n(name);
  const void* suite = nullptr;
  if (n == kOfxPropertySuite && version == 1) suite = property_suite();
  else if (n == kOfxImageEffectSuite && version == 1) suite = image_effect_suite();
  else if (n == kOfxParameterSuite && version == 1) suite = state().quirk("no_parameter_suite") ? nullptr : parameter_suite();
  else if (n == kOfxMemorySuite && version == 1) suite = &kMemory;
  else if (n == kOfxMultiThreadSuite && version == 1) suite = &kThreads;
  else if (n == kOfxMessageSuite && (version == 1 || version == 2)) {
    suite = state().quirk("no_persistent_message") ? &kMessageV2Broken : &kMessageV2;  // V2 starts with V1
  }
  log_line("SUITE", n + " v" + std::to_string(version) + (suite ? " given" : " missing"));
  return suite;
}

}  // namespace

OfxHost* host() {
  static OfxHost h{host_props().handle(), fetchSuite};
  return &h;
}

void offer_colour_management() {
  host_props().set_string(kOfxImageEffectPropColourManagementStyle, {kOfxImageEffectPropColourManagementOCIO});
}

}  // namespace testhost
