// NightGrade's OpenFX test host. Usage: ofx_test_host JOB_FILE
//
// Loads the plug-in named in the job, drives the action sequence a host runs (load, describe,
// describe in context, create instance, parameter edits, region of definition, frames needed,
// regions of interest, tiled renders at any render scale, destroy, unload) and logs every result
// as "KEY rest" lines. It exits 0 whatever the plug-in reports, so the Python test can assert on
// the log; only a broken job file or an unloadable plug-in exit non-zero.
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>

#include "host_effect.h"
#include "host_log.h"
#include "host_suites.h"
#include "job.h"

using namespace testhost;

namespace {

OfxPlugin* g_plugin = nullptr;

OfxStatus act(const char* action, const void* handle, PropertySet* in, PropertySet* out, const std::string& note = "") {
  const auto start = std::chrono::steady_clock::now();
  const OfxStatus status = g_plugin->mainEntry(action, handle, in ? in->handle() : nullptr, out ? out->handle() : nullptr);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  log_line("ACTION", std::string(action) + " " + std::to_string(status) + " " + std::to_string(static_cast<long>(ms)) +
                         "ms" + (note.empty() ? "" : " " + note));
  check_released(action);
  return status;
}

std::string prop_text(const Property& p) {
  std::ostringstream s;
  for (size_t i = 0; i < p.size(); ++i) {
    if (i) s << "|";
    if (p.type == Property::Type::Int) s << p.ints[i];
    else if (p.type == Property::Type::Double) s << p.doubles[i];
    else if (p.type == Property::Type::String) s << p.strings[i];
    else s << (p.pointers[i] ? "ptr" : "null");
  }
  return s.str();
}

// One PARAM line per parameter with every property the plug-in set: the tests check ranges,
// hints and pages from these.
void log_params(Effect& effect) {
  for (const auto& p : effect.params.params()) {
    std::string line = p->name + " " + p->type;
    for (const auto& [name, value] : p->props.all()) {
      if (name == kOfxParamPropType || name == kOfxPropName || name == kOfxPropType) continue;
      if (value.size() > 0) line += " " + name + "=" + prop_text(value);
    }
    log_line("PARAM", line);
  }
}

void log_values(Effect& instance) {
  for (const auto& p : instance.params.params()) {
    log_line("VALUE", p->name + " " + p->value_text());
    if (p->type == kOfxParamTypeChoice) {
      const Property* options = p->props.find(kOfxParamPropChoiceOption);
      log_line("CHOICE", p->name + " " + (options ? prop_text(*options) : ""));
    }
  }
}

void fill_clip_instance(Clip& clip, const Job& job) {
  PropertySet& p = clip.props;
  const std::string components = job.channels == 4 ? kOfxImageComponentRGBA : kOfxImageComponentRGB;
  p.set_string(kOfxImageEffectPropPixelDepth, {depth_name(state().depth)});
  p.set_string(kOfxImageEffectPropComponents, {components});
  p.set_string(kOfxImageClipPropUnmappedPixelDepth, {depth_name(state().depth)});
  p.set_string(kOfxImageClipPropUnmappedComponents, {components});
  p.set_string(kOfxImageEffectPropPreMultiplication, {job.channels == 4 ? kOfxImageUnPreMultiplied : kOfxImageOpaque});
  p.set_double(kOfxImagePropPixelAspectRatio, {1.0});
  p.set_double(kOfxImageEffectPropFrameRate, {24.0});
  p.set_double(kOfxImageEffectPropFrameRange, {job.first, job.last});
  p.set_double(kOfxImageEffectPropUnmappedFrameRange, {job.first, job.last});
  p.set_int(kOfxImageClipPropConnected, {1});
  p.set_int(kOfxImageClipPropContinuousSamples, {0});
  p.set_string(kOfxImageClipPropFieldOrder, {kOfxImageFieldNone});
  if (clip.name == kOfxImageEffectSimpleSourceClipName && !job.clip_colourspace.empty()) {
    p.set_string(kOfxImageClipPropColourspace, {job.clip_colourspace});
  }
}

void edit(Effect& instance, const std::string& name, const char* verb) {
  PropertySet begin_args("begin changed args");
  begin_args.set_string(kOfxPropChangeReason, {kOfxChangeUserEdited});
  act(kOfxActionBeginInstanceChanged, instance.handle(), &begin_args, nullptr);
  PropertySet args("instance changed args");
  args.set_string(kOfxPropType, {kOfxTypeParameter});
  args.set_string(kOfxPropName, {name});
  args.set_string(kOfxPropChangeReason, {kOfxChangeUserEdited});
  args.set_double(kOfxPropTime, {0.0});
  args.set_double(kOfxImageEffectPropRenderScale, {1.0, 1.0});
  act(kOfxActionInstanceChanged, instance.handle(), &args, nullptr, std::string(verb) + " " + name);
  act(kOfxActionEndInstanceChanged, instance.handle(), &begin_args, nullptr);
}

void render_step(Effect& instance, const Step& step, const Job& job) {
  HostState& s = state();
  const double scale = std::atof(step.words.at(0).c_str());
  const long frame = std::atol(step.words.at(1).c_str());
  const int tiles = std::max(1, std::atoi(step.words.at(2).c_str()));
  // PATH is the rest of the line after three numbers (it may hold spaces), less " interactive".
  std::istringstream fields(step.rest);
  std::string skip, path;
  fields >> skip >> skip >> skip;
  std::getline(fields >> std::ws, path);
  const std::string flag = " interactive";
  const bool interactive = path.size() > flag.size() && path.compare(path.size() - flag.size(), flag.size(), flag) == 0;
  if (interactive) path.resize(path.size() - flag.size());
  const Frame* source = s.source(scale, frame);
  if (source == nullptr) {
    log_line("ERROR", "no source frame " + std::to_string(frame) + " at scale " + step.words[0]);
    return;
  }
  const OfxRectI full = source->bounds;
  s.scale = scale;
  s.render_time = static_cast<OfxTime>(frame);

  PropertySet rod_in("rod args"), rod_out("rod out");
  rod_in.set_double(kOfxPropTime, {double(frame)});
  rod_in.set_double(kOfxImageEffectPropRenderScale, {scale, scale});
  rod_out.declare(kOfxImageEffectPropRegionOfDefinition, Property::Type::Double);
  const OfxStatus rod_status = act(kOfxImageEffectActionGetRegionOfDefinition, instance.handle(), &rod_in, &rod_out);
  log_line("ROD", std::to_string(frame) + " " + std::to_string(rod_status) + " " + prop_text(*rod_out.find(kOfxImageEffectPropRegionOfDefinition)));

  PropertySet frames_in("frames needed args"), frames_out("frames needed out");
  frames_in.set_double(kOfxPropTime, {double(frame)});
  const std::string range_name = std::string(kOfxImageClipPropFrameRangePrefix) + kOfxImageEffectSimpleSourceClipName;
  frames_out.set_double(range_name, {double(frame), double(frame)});
  const OfxStatus frames_status = act(kOfxImageEffectActionGetFramesNeeded, instance.handle(), &frames_in, &frames_out);
  log_line("FRAMES", std::to_string(frame) + " " + std::to_string(frames_status) + " " + prop_text(*frames_out.find(range_name)));

  PropertySet roi_in("roi args"), roi_out("roi out");
  roi_in.set_double(kOfxPropTime, {double(frame)});
  roi_in.set_double(kOfxImageEffectPropRenderScale, {scale, scale});
  const double band_top = full.y1 + (full.y2 - full.y1) / tiles;  // the first tile's window, in canonical units
  roi_in.set_double(kOfxImageEffectPropRegionOfInterest, {full.x1 / scale, full.y1 / scale, full.x2 / scale, band_top / scale});
  const std::string roi_name = std::string(kOfxImageClipPropRoIPrefix) + kOfxImageEffectSimpleSourceClipName;
  roi_out.set_double(roi_name, {full.x1 / scale, full.y1 / scale, full.x2 / scale, band_top / scale});
  const OfxStatus roi_status = act(kOfxImageEffectActionGetRegionsOfInterest, instance.handle(), &roi_in, &roi_out);
  log_line("ROI", std::to_string(frame) + " " + std::to_string(roi_status) + " " + prop_text(*roi_out.find(roi_name)));

  PropertySet seq("sequence args");
  seq.set_double(kOfxImageEffectPropFrameRange, {double(frame), double(frame)});
  seq.set_double(kOfxImageEffectPropFrameStep, {1.0});
  seq.set_int(kOfxPropIsInteractive, {interactive ? 1 : 0});
  seq.set_double(kOfxImageEffectPropRenderScale, {scale, scale});
  act(kOfxImageEffectActionBeginSequenceRender, instance.handle(), &seq, nullptr);

  std::vector<float> result(static_cast<size_t>((full.x2 - full.x1) * (full.y2 - full.y1) * job.channels),
                            std::numeric_limits<float>::quiet_NaN());
  const bool omit_scale = s.quirk("omit_render_scale");
  for (int i = 0; i < tiles; ++i) {
    const int y1 = full.y1 + (full.y2 - full.y1) * i / tiles;
    const int y2 = full.y1 + (full.y2 - full.y1) * (i + 1) / tiles;
    const OfxRectI window{full.x1, y1, full.x2, y2};
    s.output = make_image(window, job.channels, s.depth, s.layout, omit_scale ? -1.0 : scale, "output");
    PropertySet args("render args");
    args.set_double(kOfxPropTime, {double(frame)});
    args.set_string(kOfxImageEffectPropFieldToRender, {kOfxImageFieldNone});
    args.set_int(kOfxImageEffectPropRenderWindow, {window.x1, window.y1, window.x2, window.y2});
    if (!omit_scale) args.set_double(kOfxImageEffectPropRenderScale, {scale, scale});
    args.set_int(kOfxImageEffectPropSequentialRenderStatus, {0});
    args.set_int(kOfxImageEffectPropInteractiveRenderStatus, {interactive ? 1 : 0});
    set_in_render(true);
    const OfxStatus status = act(kOfxImageEffectActionRender, instance.handle(), &args, nullptr);
    set_in_render(false);
    read_back(*s.output, window, result, full);
    s.output.reset();
    log_line("RENDER", std::to_string(frame) + " " + step.words[0] + " " + std::to_string(i + 1) + "/" +
                           std::to_string(tiles) + " " + std::to_string(status));
  }
  act(kOfxImageEffectActionEndSequenceRender, instance.handle(), &seq, nullptr);
  log_line("OUTPUT", path + (write_raw(path, result) ? " written" : " failed"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: ofx_test_host JOB_FILE\n";
    return 2;
  }
  Job job;
  std::string error;
  if (!read_job(argv[1], job, error)) {
    std::cerr << "ofx_test_host: " << error << "\n";
    return 2;
  }
  HostState& s = state();
  s.depth = parse_depth(job.depth);
  s.layout = parse_layout(job.layout);
  s.channels = job.channels;
  s.quirks = job.quirks;
  for (const SourceSpec& spec : job.sources) {
    Frame f = read_frame(spec.path, OfxRectI{spec.x1, spec.y1, spec.x2, spec.y2}, job.channels);
    if (f.pixels.empty()) {
      std::cerr << "ofx_test_host: cannot read " << spec.path << " as a raw float32 frame of that size\n";
      return 2;
    }
    s.sources[{std::lround(spec.scale * 1000.0), spec.frame}] = std::move(f);
  }

  if (!job.clip_colourspace.empty()) offer_colour_management();
  void* library = dlopen(job.plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    std::cerr << "ofx_test_host: dlopen failed: " << dlerror() << "\n";
    return 3;
  }
  auto count = reinterpret_cast<OfxGetNumberOfPluginsFunc>(dlsym(library, "OfxGetNumberOfPlugins"));
  auto get = reinterpret_cast<OfxGetPluginFunc>(dlsym(library, "OfxGetPlugin"));
  if (count == nullptr || get == nullptr || count() < 1 || (g_plugin = get(0)) == nullptr) {
    std::cerr << "ofx_test_host: the library exports no OpenFX plug-in\n";
    return 3;
  }
  log_line("PLUGIN", std::string(g_plugin->pluginIdentifier) + " " + std::to_string(g_plugin->pluginVersionMajor) + "." +
                         std::to_string(g_plugin->pluginVersionMinor) + " " + g_plugin->pluginApi + " " +
                         std::to_string(g_plugin->apiVersion));
  g_plugin->setHost(host());
  if (act(kOfxActionLoad, nullptr, nullptr, nullptr) != kOfxStatOK) {
    log_line("DONE", "violations=" + std::to_string(violation_count()));
    return 0;
  }

  Effect descriptor;
  descriptor.props.set_string(kOfxPropType, {kOfxTypeImageEffect});
  descriptor.props.set_string(kOfxPluginPropFilePath, {job.plugin});
  act(kOfxActionDescribe, descriptor.handle(), nullptr, nullptr);
  for (const auto& [name, value] : descriptor.props.all()) log_line("PLUGINPROP", name + "=" + prop_text(value));

  const std::string context = job.context == "general" ? kOfxImageEffectContextGeneral : kOfxImageEffectContextFilter;
  Effect in_context;
  in_context.props.copy_from(descriptor.props);
  in_context.props.set_string(kOfxImageEffectPropContext, {context});
  PropertySet context_args("describe in context args");
  context_args.set_string(kOfxImageEffectPropContext, {context});
  act(kOfxImageEffectActionDescribeInContext, in_context.handle(), &context_args, nullptr);
  for (const auto& clip : in_context.clips) {
    log_line("CLIP", clip->name + " " + prop_text(*clip->props.find(kOfxPropName)) + " components=" +
                         (clip->props.has(kOfxImageEffectPropSupportedComponents)
                              ? prop_text(*clip->props.find(kOfxImageEffectPropSupportedComponents)) : ""));
  }
  log_params(in_context);

  Effect instance;
  instance.props.copy_from(in_context.props);
  instance.props.set_string(kOfxPropType, {kOfxTypeImageEffectInstance});
  instance.props.set_pointer(kOfxPropInstanceData, {nullptr});
  instance.props.set_pointer(kOfxImageEffectPropPluginHandle, {descriptor.handle()});
  instance.props.set_int(kOfxPropIsInteractive, {1});
  instance.props.set_double(kOfxImageEffectPropFrameRate, {24.0});
  instance.params.instantiate_from(in_context.params);
  for (const auto& clip : in_context.clips) {
    instance.clips.push_back(std::make_unique<Clip>(clip->name));
    instance.clips.back()->props.copy_from(clip->props);
    fill_clip_instance(*instance.clips.back(), job);
  }
  if (act(kOfxActionCreateInstance, instance.handle(), nullptr, nullptr) == kOfxStatOK) {
    PropertySet prefs_out("clip preferences out");
    act(kOfxImageEffectActionGetClipPreferences, instance.handle(), nullptr, &prefs_out);
    for (const Step& step : job.steps) {
      if (step.verb == "set" || step.verb == "press") {
        Param* param = instance.params.find(step.words.empty() ? "" : step.words[0]);
        if (param == nullptr) {
          log_line("ERROR", "no parameter " + step.rest);
          continue;
        }
        if (step.verb == "set") {
          const std::string value = step.rest.size() > param->name.size() ? step.rest.substr(param->name.size() + 1) : "";
          param->set_from_text(value);
        }
        edit(instance, param->name, step.verb.c_str());
      } else if (step.verb == "identity") {
        PropertySet in("identity args"), out("identity out");
        in.set_double(kOfxPropTime, {std::atof(step.words.at(0).c_str())});
        in.set_double(kOfxImageEffectPropRenderScale, {1.0, 1.0});
        in.set_string(kOfxImageEffectPropFieldToRender, {kOfxImageFieldNone});
        out.set_string(kOfxPropName, {""});
        out.set_double(kOfxPropTime, {std::atof(step.words.at(0).c_str())});
        const OfxStatus status = act(kOfxImageEffectActionIsIdentity, instance.handle(), &in, &out);
        log_line("IDENTITY", step.words[0] + " " + std::to_string(status) + " " + out.get_string(kOfxPropName, 0, ""));
      } else if (step.verb == "wait_for") {
        log_line("WAITING", step.rest);
        for (int i = 0; i < 600 && access(step.rest.c_str(), F_OK) != 0; ++i) usleep(100000);
        log_line("RESUMED", step.rest);
      } else if (step.verb == "render") {
        if (step.words.size() < 4) {
          log_line("ERROR", "render needs SCALE FRAME TILES PATH");
          continue;
        }
        render_step(instance, step, job);
      }
    }
    act(kOfxActionSyncPrivateData, instance.handle(), nullptr, nullptr);
    log_values(instance);
    act(kOfxActionDestroyInstance, instance.handle(), nullptr, nullptr);
  }
  act(kOfxActionUnload, nullptr, nullptr, nullptr);
  dlclose(library);
  log_line("DONE", "violations=" + std::to_string(violation_count()));
  return 0;
}
