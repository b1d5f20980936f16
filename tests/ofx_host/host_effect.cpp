#include "host_effect.h"

#include <cmath>

#include "host_log.h"

namespace testhost {

Clip* Effect::find_clip(const std::string& name) {
  for (auto& c : clips) {
    if (c->name == name) return c.get();
  }
  return nullptr;
}

HostState& state() {
  static HostState s;
  return s;
}

const Frame* HostState::source(double at_scale, OfxTime time) const {
  auto it = sources.find({std::lround(at_scale * 1000.0), std::lround(time)});
  return it == sources.end() ? nullptr : &it->second;
}

void check_released(const std::string& action) {
  HostState& s = state();
  if (!s.fetched.empty()) log_violation(std::to_string(s.fetched.size()) + " image(s) not released after " + action);
  s.fetched.clear();
  s.source_images.clear();
}

namespace {

Clip* clip_of(OfxImageClipHandle h) { return reinterpret_cast<Clip*>(h); }

OfxStatus getPropertySet(OfxImageEffectHandle effect, OfxPropertySetHandle* props) {
  if (effect == nullptr || props == nullptr) return kOfxStatErrBadHandle;
  *props = Effect::from(effect)->props.handle();
  return kOfxStatOK;
}

OfxStatus getParamSet(OfxImageEffectHandle effect, OfxParamSetHandle* params) {
  if (effect == nullptr || params == nullptr) return kOfxStatErrBadHandle;
  *params = Effect::from(effect)->params.handle();
  return kOfxStatOK;
}

OfxStatus clipDefine(OfxImageEffectHandle effect, const char* name, OfxPropertySetHandle* props) {
  if (effect == nullptr || name == nullptr) return kOfxStatErrBadHandle;
  Effect* e = Effect::from(effect);
  if (e->find_clip(name) != nullptr) return kOfxStatErrExists;
  e->clips.push_back(std::make_unique<Clip>(name));
  Clip* clip = e->clips.back().get();
  clip->props.set_string(kOfxPropName, {name});
  clip->props.set_string(kOfxPropType, {kOfxTypeClip});
  if (props != nullptr) *props = clip->props.handle();
  return kOfxStatOK;
}

OfxStatus clipGetHandle(OfxImageEffectHandle effect, const char* name, OfxImageClipHandle* clip, OfxPropertySetHandle* props) {
  if (effect == nullptr || name == nullptr || clip == nullptr) return kOfxStatErrBadHandle;
  Clip* c = Effect::from(effect)->find_clip(name);
  if (c == nullptr) return kOfxStatErrUnknown;
  *clip = c->handle();
  if (props != nullptr) *props = c->props.handle();
  return kOfxStatOK;
}

OfxStatus clipGetPropertySet(OfxImageClipHandle clip, OfxPropertySetHandle* props) {
  if (clip == nullptr || props == nullptr) return kOfxStatErrBadHandle;
  *props = clip_of(clip)->props.handle();
  return kOfxStatOK;
}

OfxStatus clipGetImage(OfxImageClipHandle clip, OfxTime time, const OfxRectD* /*region*/, OfxPropertySetHandle* image) {
  if (clip == nullptr || image == nullptr) return kOfxStatErrBadHandle;
  HostState& s = state();
  *image = nullptr;
  const Clip* c = clip_of(clip);
  if (c->name == kOfxImageEffectOutputClipName) {
    if (!s.output) return kOfxStatFailed;
    *image = s.output->props.handle();
    s.fetched.insert(&s.output->props);
    return kOfxStatOK;
  }
  if (s.quirk("null_source")) return kOfxStatOK;  // "connected", yet no image (Resolve)
  const OfxTime at = s.quirk("same_neighbours") ? s.render_time : time;
  // half_size_image: the render scale says one thing, the image is the one for half of it.
  const Frame* frame = s.source(s.quirk("half_size_image") ? s.scale / 2 : s.scale, at);
  if (frame == nullptr || frame->pixels.empty()) return kOfxStatFailed;
  const double scale_prop = s.quirk("omit_render_scale") ? -1.0 : s.scale;
  auto img = make_image(frame->bounds, s.channels, s.depth, s.layout, scale_prop,
                        "source-" + std::to_string(std::lround(at)) + "-" + std::to_string(std::lround(s.scale * 1000)));
  fill_image(*img, *frame);
  PropertySet* props = &img->props;
  s.source_images[props] = std::move(img);
  s.fetched.insert(props);
  *image = props->handle();
  log_line("FETCH", std::to_string(std::lround(time)));
  return kOfxStatOK;
}

OfxStatus clipReleaseImage(OfxPropertySetHandle image) {
  HostState& s = state();
  PropertySet* props = PropertySet::from(image);
  auto it = s.fetched.find(props);
  if (it == s.fetched.end()) {
    log_violation("release of an image that was not fetched");
    return kOfxStatErrBadHandle;
  }
  s.fetched.erase(it);
  if (s.fetched.count(props) == 0) s.source_images.erase(props);
  return kOfxStatOK;
}

OfxStatus clipGetRegionOfDefinition(OfxImageClipHandle clip, OfxTime time, OfxRectD* bounds) {
  if (clip == nullptr || bounds == nullptr) return kOfxStatErrBadHandle;
  // Canonical coordinates: the full-resolution frame, whatever the render scale.
  const Frame* frame = state().source(1.0, time);
  if (frame == nullptr) return kOfxStatFailed;
  *bounds = OfxRectD{double(frame->bounds.x1), double(frame->bounds.y1), double(frame->bounds.x2), double(frame->bounds.y2)};
  return kOfxStatOK;
}

int abortRender(OfxImageEffectHandle) { return state().quirk("abort") ? 1 : 0; }

OfxStatus imageMemoryAlloc(OfxImageEffectHandle, size_t bytes, OfxImageMemoryHandle* handle) {
  if (handle == nullptr) return kOfxStatErrBadHandle;
  *handle = reinterpret_cast<OfxImageMemoryHandle>(new std::vector<unsigned char>(bytes));
  return kOfxStatOK;
}

OfxStatus imageMemoryFree(OfxImageMemoryHandle handle) {
  delete reinterpret_cast<std::vector<unsigned char>*>(handle);
  return kOfxStatOK;
}

OfxStatus imageMemoryLock(OfxImageMemoryHandle handle, void** data) {
  if (handle == nullptr || data == nullptr) return kOfxStatErrBadHandle;
  *data = reinterpret_cast<std::vector<unsigned char>*>(handle)->data();
  return kOfxStatOK;
}

OfxStatus imageMemoryUnlock(OfxImageMemoryHandle) { return kOfxStatOK; }

const OfxImageEffectSuiteV1 kSuite = {getPropertySet, getParamSet, clipDefine, clipGetHandle, clipGetPropertySet,
                                      clipGetImage, clipReleaseImage, clipGetRegionOfDefinition, abortRender,
                                      imageMemoryAlloc, imageMemoryFree, imageMemoryLock, imageMemoryUnlock};

}  // namespace

const OfxImageEffectSuiteV1* image_effect_suite() { return &kSuite; }

}  // namespace testhost
