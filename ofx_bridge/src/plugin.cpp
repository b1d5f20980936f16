// The plug-in's C entry points. Everything the host calls lands in main_entry, which traps every
// exception: nothing ever unwinds into the host.
#include <cstring>
#include <exception>

#include "actions.h"
#include "daemon_client.h"
#include "suites.h"

namespace nightgrade::ofx {
namespace {

bool g_loaded = false;

void set_host(OfxHost* host) { suites().host = host; }

OfxStatus dispatch(const char* action, OfxImageEffectHandle handle, OfxPropertySetHandle in_args,
                   OfxPropertySetHandle out_args) {
  auto is = [action](const char* name) { return std::strcmp(action, name) == 0; };
  if (is(kOfxActionLoad)) {
    // Suites only: no sockets, threads or files here (hosts load every plug-in at start-up).
    g_loaded = fetch_suites();
    return g_loaded ? kOfxStatOK : kOfxStatErrMissingHostFeature;
  }
  if (!g_loaded) return kOfxStatErrMissingHostFeature;
  if (is(kOfxActionUnload)) {
    shutdown_zmq();
    g_loaded = false;
    return kOfxStatOK;
  }
  if (is(kOfxActionDescribe)) return actions::describe(handle);
  if (is(kOfxImageEffectActionDescribeInContext)) return actions::describe_in_context(handle, in_args);
  if (is(kOfxActionCreateInstance)) return actions::create_instance(handle);
  if (is(kOfxActionDestroyInstance)) return actions::destroy_instance(handle);
  if (is(kOfxActionInstanceChanged)) return actions::instance_changed(handle, in_args);
  if (is(kOfxActionBeginInstanceEdit) || is(kOfxActionSyncPrivateData)) return actions::publish(handle);
  if (is(kOfxActionPurgeCaches)) return actions::purge_caches(handle);
  if (is(kOfxImageEffectActionGetRegionOfDefinition)) return actions::region_of_definition(handle, in_args, out_args);
  if (is(kOfxImageEffectActionGetRegionsOfInterest)) return actions::regions_of_interest(handle, in_args, out_args);
  if (is(kOfxImageEffectActionGetFramesNeeded)) return actions::frames_needed(handle, in_args, out_args);
  if (is(kOfxImageEffectActionIsIdentity)) return actions::is_identity(handle, in_args, out_args);
  if (is(kOfxImageEffectActionRender)) return actions::render(handle, in_args);
  return kOfxStatReplyDefault;
}

OfxStatus main_entry(const char* action, const void* handle, OfxPropertySetHandle in_args,
                     OfxPropertySetHandle out_args) {
  if (action == nullptr) return kOfxStatErrValue;
  try {
    return dispatch(action, static_cast<OfxImageEffectHandle>(const_cast<void*>(handle)), in_args, out_args);
  } catch (const std::bad_alloc&) {
    return kOfxStatErrMemory;
  } catch (...) {
    return kOfxStatFailed;
  }
}

OfxPlugin g_plugin = {kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, "com.nightgrade.NightGrade",
                      NIGHTGRADE_OFX_VERSION_MAJOR, NIGHTGRADE_OFX_VERSION_MINOR, set_host, main_entry};

}  // namespace
}  // namespace nightgrade::ofx

extern "C" {

__attribute__((visibility("default"))) OfxPlugin* OfxGetPlugin(int nth) {
  return nth == 0 ? &nightgrade::ofx::g_plugin : nullptr;
}

__attribute__((visibility("default"))) int OfxGetNumberOfPlugins(void) { return 1; }

}  // extern "C"
