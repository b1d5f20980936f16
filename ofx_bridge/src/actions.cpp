#include "actions.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>
#include <string>

#include "errors.h"
#include "instance.h"
#include "props.h"
#include "render.h"
#include "suites.h"

namespace nightgrade::ofx::actions {

namespace {

OfxPropertySetHandle effect_props(OfxImageEffectHandle handle) {
  OfxPropertySetHandle set = nullptr;
  if (suites().effect->getPropertySet(handle, &set) != kOfxStatOK) return nullptr;
  return set;
}

Instance& require(OfxImageEffectHandle handle) {
  Instance* instance = instance_of(handle);
  if (instance == nullptr) throw BridgeError(Failure::HostImage, "NightGrade: the host called an instance it never created");
  return *instance;
}

bool source_rod(const Instance& inst, OfxTime time, OfxRectD& rod) {
  return inst.source != nullptr &&
         suites().effect->clipGetRegionOfDefinition(inst.source, time, &rod) == kOfxStatOK && rod.x1 < rod.x2 &&
         rod.y1 < rod.y2;
}

}  // namespace

OfxStatus describe(OfxImageEffectHandle descriptor) {
  OfxPropertySetHandle p = effect_props(descriptor);
  if (p == nullptr) return kOfxStatErrBadHandle;
  props::set_string(p, kOfxPropLabel, 0, "NightGrade");
  props::set_string(p, kOfxPropShortLabel, 0, "NightGrade");
  props::set_string(p, kOfxPropLongLabel, 0, "NightGrade low-light enhance");
  props::set_string(p, kOfxPropPluginDescription, 0,
                    "Low-light enhancement by a multiscale-patch CycleGAN with optional temporal smoothing. The "
                    "frames are enhanced by the NightGrade daemon (`nightgrade serve`), which this node reaches at "
                    "its Daemon address.");
  props::set_string(p, kOfxImageEffectPluginPropGrouping, 0, "NightGrade");
  props::set_int(p, kOfxPropVersion, 0, 0);
  props::set_int(p, kOfxPropVersion, 1, 1);
  props::set_int(p, kOfxPropVersion, 2, 0);
  props::set_string(p, kOfxPropVersionLabel, 0, NIGHTGRADE_OFX_VERSION);
  props::set_strings(p, kOfxImageEffectPropSupportedContexts, {kOfxImageEffectContextFilter, kOfxImageEffectContextGeneral});
  props::set_strings(p, kOfxImageEffectPropSupportedPixelDepths,
                     {kOfxBitDepthFloat, kOfxBitDepthHalf, kOfxBitDepthShort, kOfxBitDepthByte});
  props::set_int(p, kOfxImageEffectPluginPropSingleInstance, 0, 0);
  // Renders of one instance may run at once: each leases its own daemon connection.
  props::set_string(p, kOfxImageEffectPluginRenderThreadSafety, 0, kOfxImageEffectRenderFullySafe);
  // The daemon enhances whole frames; splitting one frame over host threads only queues the same
  // frame several times.
  props::set_int(p, kOfxImageEffectPluginPropHostFrameThreading, 0, 0);
  props::set_int(p, kOfxImageEffectPropSupportsMultiResolution, 0, 1);
  props::set_int(p, kOfxImageEffectPropSupportsTiles, 0, 1);
  props::set_int(p, kOfxImageEffectPropTemporalClipAccess, 0, 1);
  props::set_int(p, kOfxImageEffectPropSupportsMultipleClipDepths, 0, 0);
  props::set_int(p, kOfxImageEffectPropSupportsMultipleClipPARs, 0, 0);
  props::set_int(p, kOfxImageEffectPluginPropFieldRenderTwiceAlways, 0, 0);
  // OpenFX 1.5: any colourspace name will do (the daemon converts with OCIO), so the highest style;
  // it implies the native ones. No preferred colourspace is set: the daemon adapts to the clip's.
  props::set_string(p, kOfxImageEffectPropColourManagementStyle, 0, kOfxImageEffectPropColourManagementOCIO);
  return kOfxStatOK;
}

OfxStatus describe_in_context(OfxImageEffectHandle descriptor, OfxPropertySetHandle /*in_args*/) {
  const HostSuites& s = suites();
  OfxPropertySetHandle clip = nullptr;
  if (s.effect->clipDefine(descriptor, kOfxImageEffectSimpleSourceClipName, &clip) != kOfxStatOK) return kOfxStatFailed;
  props::set_strings(clip, kOfxImageEffectPropSupportedComponents, {kOfxImageComponentRGBA, kOfxImageComponentRGB});
  props::set_int(clip, kOfxImageEffectPropTemporalClipAccess, 0, 1);
  props::set_int(clip, kOfxImageEffectPropSupportsTiles, 0, 1);
  props::set_int(clip, kOfxImageClipPropOptional, 0, 0);
  if (s.effect->clipDefine(descriptor, kOfxImageEffectOutputClipName, &clip) != kOfxStatOK) return kOfxStatFailed;
  props::set_strings(clip, kOfxImageEffectPropSupportedComponents, {kOfxImageComponentRGBA, kOfxImageComponentRGB});
  props::set_int(clip, kOfxImageEffectPropSupportsTiles, 0, 1);
  OfxParamSetHandle params = nullptr;
  if (s.effect->getParamSet(descriptor, &params) != kOfxStatOK) return kOfxStatFailed;
  return define_params(params) ? kOfxStatOK : kOfxStatFailed;
}

OfxStatus create_instance(OfxImageEffectHandle handle) {
  static std::atomic<unsigned> counter{0};
  const HostSuites& s = suites();
  auto instance = std::make_unique<Instance>();
  instance->handle = handle;
  instance->clip_name = "ofx-" + std::to_string(++counter);
  if (s.effect->clipGetHandle(handle, kOfxImageEffectSimpleSourceClipName, &instance->source, nullptr) != kOfxStatOK ||
      s.effect->clipGetHandle(handle, kOfxImageEffectOutputClipName, &instance->output, nullptr) != kOfxStatOK) {
    return kOfxStatFailed;
  }
  instance->params = fetch_param_handles(handle);
  if (!props::set_pointer(effect_props(handle), kOfxPropInstanceData, 0, instance.get())) return kOfxStatFailed;
  instance.release();  // owned by the host's instance now; destroy_instance deletes it
  return kOfxStatOK;
}

OfxStatus destroy_instance(OfxImageEffectHandle handle) {
  Instance* instance = instance_of(handle);
  props::set_pointer(effect_props(handle), kOfxPropInstanceData, 0, nullptr);
  delete instance;  // closes its daemon connections (LINGER 0: never blocks)
  return kOfxStatOK;
}

OfxStatus instance_changed(OfxImageEffectHandle handle, OfxPropertySetHandle in_args) {
  Instance& inst = require(handle);
  const std::string type = props::get_string(in_args, kOfxPropType, 0, "");
  const std::string name = props::get_string(in_args, kOfxPropName, 0, "");
  const std::string reason = props::get_string(in_args, kOfxPropChangeReason, 0, "");
  const OfxTime time = props::get_double(in_args, kOfxPropTime, 0, 0.0);
  if (type == kOfxTypeParameter) {
    if (name == param::kReconnect) {
      reconnect(inst, time);
      return kOfxStatOK;
    }
    if (name == param::kModel && reason == kOfxChangeUserEdited) remember_model_choice(inst, time);
    if (name == param::kAddress || name == param::kCurveServerKey || name == param::kCurveClientKey) {
      reset_clients(inst);
    }
  }
  publish_state(inst);
  return kOfxStatOK;
}

OfxStatus publish(OfxImageEffectHandle handle) {
  publish_state(require(handle));
  return kOfxStatOK;
}

OfxStatus purge_caches(OfxImageEffectHandle handle) {
  reset_clients(require(handle));
  return kOfxStatOK;
}

OfxStatus region_of_definition(OfxImageEffectHandle handle, OfxPropertySetHandle in_args, OfxPropertySetHandle out_args) {
  const Instance& inst = require(handle);
  OfxRectD rod;
  if (!source_rod(inst, props::get_double(in_args, kOfxPropTime, 0, 0.0), rod)) return kOfxStatReplyDefault;
  props::set_doubles(out_args, kOfxImageEffectPropRegionOfDefinition, {rod.x1, rod.y1, rod.x2, rod.y2});
  return kOfxStatOK;
}

OfxStatus regions_of_interest(OfxImageEffectHandle handle, OfxPropertySetHandle in_args, OfxPropertySetHandle out_args) {
  // The generator needs the region context around every tile and the daemon enhances (and caches)
  // whole frames: ask for the whole source, whatever window is being rendered.
  const Instance& inst = require(handle);
  OfxRectD rod;
  if (!source_rod(inst, props::get_double(in_args, kOfxPropTime, 0, 0.0), rod)) return kOfxStatReplyDefault;
  const std::string name = std::string(kOfxImageClipPropRoIPrefix) + kOfxImageEffectSimpleSourceClipName;
  props::set_doubles(out_args, name.c_str(), {rod.x1, rod.y1, rod.x2, rod.y2});
  return kOfxStatOK;
}

OfxStatus frames_needed(OfxImageEffectHandle handle, OfxPropertySetHandle in_args, OfxPropertySetHandle out_args) {
  const Instance& inst = require(handle);
  const OfxTime time = props::get_double(in_args, kOfxPropTime, 0, 0.0);
  const Settings s = read_settings(inst.params, time);
  const int radius = s.temporal ? s.radius : 0;
  double first = time - radius, last = time + radius;
  OfxPropertySetHandle clip_props = nullptr;
  double range[2];
  if (suites().effect->clipGetPropertySet(inst.source, &clip_props) == kOfxStatOK &&
      props::get_doubles(clip_props, kOfxImageEffectPropFrameRange, 2, range) && range[0] <= range[1]) {
    first = std::max(first, std::min(range[0], time));
    last = std::min(last, std::max(range[1], time));
  }
  const std::string name = std::string(kOfxImageClipPropFrameRangePrefix) + kOfxImageEffectSimpleSourceClipName;
  props::set_doubles(out_args, name.c_str(), {first, last});
  return kOfxStatOK;
}

OfxStatus is_identity(OfxImageEffectHandle handle, OfxPropertySetHandle in_args, OfxPropertySetHandle out_args) {
  const Instance& inst = require(handle);
  const Settings s = read_settings(inst.params, props::get_double(in_args, kOfxPropTime, 0, 0.0));
  if (s.mix > 0.0 && s.view != param::View::Original) return kOfxStatReplyDefault;
  props::set_string(out_args, kOfxPropName, 0, kOfxImageEffectSimpleSourceClipName);
  return kOfxStatOK;
}

OfxStatus render(OfxImageEffectHandle handle, OfxPropertySetHandle in_args) {
  Instance& inst = require(handle);
  try {
    render_frame(inst, in_args);
    return kOfxStatOK;
  } catch (const BridgeError& error) {
    if (error.failure() == Failure::Aborted) return kOfxStatFailed;  // the host asked: no message
    report_failure(inst, error.what());
    return kOfxStatFailed;
  } catch (const std::bad_alloc&) {
    report_failure(inst, "NightGrade: out of memory while preparing the frame: render at a proxy scale or close other work");
    return kOfxStatErrMemory;
  } catch (const std::exception& error) {
    report_failure(inst, std::string("NightGrade: internal error (") + error.what() + "); please report it with the daemon's log");
    return kOfxStatFailed;
  }
}

}  // namespace nightgrade::ofx::actions
