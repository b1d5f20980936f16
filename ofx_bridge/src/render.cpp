#include "render.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "digest.h"
#include "compare_view.h"
#include "errors.h"
#include "ofx/image_effect.h"
#include "pixels.h"
#include "props.h"
#include "suites.h"

namespace nightgrade::ofx {

namespace {

// An image fetched from a clip, released when it goes out of scope (OpenFX requires the release
// within the action that fetched it).
class FetchedImage {
 public:
  FetchedImage(OfxImageClipHandle clip, OfxTime time) {
    if (clip == nullptr || suites().effect->clipGetImage(clip, time, nullptr, &handle_) != kOfxStatOK) {
      handle_ = nullptr;
    }
  }
  ~FetchedImage() { release(); }
  FetchedImage(const FetchedImage&) = delete;
  FetchedImage& operator=(const FetchedImage&) = delete;
  OfxPropertySetHandle get() const { return handle_; }
  void release() {
    if (handle_ != nullptr) suites().effect->clipReleaseImage(handle_);
    handle_ = nullptr;
  }

 private:
  OfxPropertySetHandle handle_ = nullptr;
};

struct Neighbour {
  int64_t frame;
  OfxTime time;
  std::string digest;
};

struct Neighbourhood {
  std::vector<Neighbour> frames;
  int duplicates = 0;   // neighbours whose pixels equal the centre's or another neighbour's
  int mismatched = 0;   // neighbours of another size or format than the centre
};

bool same_geometry(const HostImage& a, const HostImage& b) {
  return a.bounds.x1 == b.bounds.x1 && a.bounds.y1 == b.bounds.y1 && a.bounds.x2 == b.bounds.x2 &&
         a.bounds.y2 == b.bounds.y2 && a.channels == b.channels && a.depth == b.depth;
}

// Frames the host gives around `time`, identified by digest. Some hosts hand the current frame
// for every neighbour; those duplicates are dropped and counted so the status can say so.
Neighbourhood gather_neighbours(const Instance& inst, OfxTime time, int radius, const HostImage& centre,
                                const std::string& centre_digest) {
  Neighbourhood out;
  OfxPropertySetHandle clip_props = nullptr;
  double range[2] = {-1e9, 1e9};
  if (suites().effect->clipGetPropertySet(inst.source, &clip_props) == kOfxStatOK) {
    props::get_doubles(clip_props, kOfxImageEffectPropFrameRange, 2, range);
  }
  std::vector<std::string> seen{centre_digest};
  for (int offset = -radius; offset <= radius; ++offset) {
    const OfxTime t = time + offset;
    if (offset == 0 || t < range[0] || t > range[1]) continue;
    FetchedImage image(inst.source, t);
    if (image.get() == nullptr) continue;  // the sequence ends here: the window is one-sided
    const HostImage pixels = describe_image(image.get(), "neighbouring");
    if (!same_geometry(pixels, centre)) {
      ++out.mismatched;
      continue;
    }
    std::string digest = digest_top_down(pixels);
    if (std::find(seen.begin(), seen.end(), digest) != seen.end()) {
      ++out.duplicates;
      continue;
    }
    seen.push_back(digest);
    out.frames.push_back({std::llround(t), t, std::move(digest)});
  }
  return out;
}

// Pixels of the neighbours the daemon asked for, fetched again: they were not kept after hashing
// so a 12-frame window never holds 12 whole frames in memory twice.
std::vector<std::vector<float>> fetch_needed(const Instance& inst, const Neighbourhood& hood,
                                            const std::vector<std::string>& need, const HostImage& centre) {
  std::vector<std::vector<float>> buffers;
  for (const std::string& digest : need) {
    auto match = std::find_if(hood.frames.begin(), hood.frames.end(), [&](const Neighbour& n) { return n.digest == digest; });
    if (match == hood.frames.end()) {
      throw BridgeError(Failure::Malformed, "NightGrade: the daemon asked for a frame this plug-in never offered (" +
                                                digest + "): update the daemon and the plug-in to the same release");
    }
    FetchedImage image(inst.source, match->time);
    if (image.get() == nullptr) {
      throw BridgeError(Failure::HostImage, "NightGrade: the host no longer gives frame " + std::to_string(match->frame) +
                                                " for temporal smoothing: render again, or turn Temporal smoothing off");
    }
    const HostImage pixels = describe_image(image.get(), "neighbouring");
    Digest d;
    std::vector<float> buffer = to_top_down(pixels, &d);
    if (!same_geometry(pixels, centre) || d.finish() != digest) {
      throw BridgeError(Failure::HostImage, "NightGrade: the host gave different pixels for frame " +
                                                std::to_string(match->frame) +
                                                " on a second fetch: render again, or turn Temporal smoothing off");
    }
    buffers.push_back(std::move(buffer));
  }
  return buffers;
}

// A reported render scale must fit the image the host handed over (the whole clip, as the RoI
// asks): a scale of 1 with a half-size image would make the daemon treat a proxy as full
// resolution and size tiles and motion search wrongly, so it is refused with both sizes named.
void check_scale_fits(double s, const OfxRectD& rod, double aspect, const HostImage& pixels) {
  const double width = (rod.x2 - rod.x1) / aspect * s, height = (rod.y2 - rod.y1) * s;
  const auto fits = [](int got, double expected) { return got >= std::floor(expected) - 1 && got <= std::ceil(expected) + 1; };
  if (fits(pixels.width(), width) && fits(pixels.height(), height)) return;
  char text[400];
  std::snprintf(text, sizeof text,
                "NightGrade: the host reported render scale %g but gave a %dx%d source image for a %gx%g clip "
                "(%.0fx%.0f at that scale): its proxy setting and its images disagree; render again, or report it "
                "to the host's vendor",
                s, pixels.width(), pixels.height(), (rod.x2 - rod.x1) / aspect, rod.y2 - rod.y1, width, height);
  throw BridgeError(Failure::HostImage, text);
}

// The render scale: the action's, else the image's. Some hosts (Resolve) omit both; then it is
// inferred from the image bounds against the clip's canonical region of definition, since the
// bounds are what the host really rendered.
double render_scale(const Instance& inst, OfxTime time, OfxPropertySetHandle in_args, OfxPropertySetHandle image,
                    const HostImage& pixels) {
  double scale[2];
  double s = 0.0;
  // Canonical coordinates are pixels times the pixel aspect ratio (anamorphic plates: 2).
  double aspect = props::get_double(image, kOfxImagePropPixelAspectRatio, 0, 1.0);
  if (!std::isfinite(aspect) || aspect <= 0.0) aspect = 1.0;
  OfxRectD rod;
  const bool have_rod = suites().effect->clipGetRegionOfDefinition(inst.source, time, &rod) == kOfxStatOK &&
                        rod.x2 > rod.x1 && rod.y2 > rod.y1;
  if (props::get_doubles(in_args, kOfxImageEffectPropRenderScale, 2, scale) ||
      props::get_doubles(image, kOfxImageEffectPropRenderScale, 2, scale)) {
    s = scale[0];
    if (have_rod && std::isfinite(s) && s > 0.0) check_scale_fits(s, rod, aspect, pixels);
  } else if (have_rod) {
    s = pixels.width() * aspect / (rod.x2 - rod.x1);
  }
  return std::isfinite(s) && s > 0.0 ? std::min(s, 1.0) : 1.0;
}

BridgeError daemon_error(const protocol::Error& error) {
  std::string text = error.message.empty() ? "the daemon reported " + error.code : error.message;
  return BridgeError(Failure::DaemonError, "NightGrade daemon: " + text + " [" + error.code + "]", error.code);
}

void check_result(const protocol::Result& r, const Reply& reply, const std::array<int, 4>& window, int channels) {
  const int64_t width = window[2] - window[0], height = window[3] - window[1];
  std::string problem;
  if (r.format != "float32") problem = "format " + r.format + " instead of float32";
  else if (r.channels != channels) problem = std::to_string(r.channels) + " channels instead of " + std::to_string(channels);
  else if (r.window[0] != window[0] || r.window[1] != window[1] || r.window[2] != window[2] || r.window[3] != window[3])
    problem = "a window other than the one asked for";
  else if (r.width != width || r.height != height) problem = "a size that does not match its window";
  else if (r.row_bytes < width * channels * 4) problem = "rows shorter than its width";
  else if (reply.buffers.size() != 1) problem = std::to_string(reply.buffers.size()) + " pixel buffers instead of 1";
  else if (static_cast<int64_t>(reply.buffers[0].size()) != r.row_bytes * height) problem = "a pixel buffer of the wrong size";
  if (!problem.empty()) {
    throw BridgeError(Failure::Malformed, "NightGrade: the daemon's RESULT has " + problem +
                                              ": update the daemon and the plug-in to the same release");
  }
}

std::string describe_success(const protocol::Welcome& w, const std::string& address, int64_t frame,
                             const protocol::Result& r, const Neighbourhood& hood, bool temporal,
                             const std::string& colourspace) {
  char timing[96];
  std::snprintf(timing, sizeof timing, "%lld generator pass(es), %.2f s", static_cast<long long>(r.generator_passes), r.seconds);
  std::string text = "Frame " + std::to_string(frame) + " by " + w.server + " on " + w.device + " at " + address + ": " + timing;
  text += colourspace.empty() ? "; the host reports no colourspace, so Linear Rec.709 (as nightgrade enhance reads EXR)"
                              : "; input colourspace " + colourspace;
  if (temporal) {
    char averaged[48];
    std::snprintf(averaged, sizeof averaged, ", %.2f frames averaged", r.frames_averaged);
    text += averaged;
    if (hood.frames.empty() && hood.duplicates > 0) {
      text += "; the host gave the same image for every neighbouring frame, so temporal smoothing has nothing to average";
    } else if (hood.duplicates > 0) {
      text += "; " + std::to_string(hood.duplicates) + " neighbouring frame(s) repeated another frame's pixels";
    }
    if (hood.mismatched > 0) text += "; " + std::to_string(hood.mismatched) + " neighbouring frame(s) of another size skipped";
  }
  return text;
}

// The source clip's colourspace as an OCIO name, "" when the host reports none (no OpenFX 1.5
// colour management): the daemon then applies the CLI's default for float frames.
std::string host_colourspace(const Instance& inst) {
  OfxPropertySetHandle clip_props = nullptr;
  if (suites().effect->clipGetPropertySet(inst.source, &clip_props) != kOfxStatOK) return "";
  std::string name = props::get_string(clip_props, kOfxImageClipPropColourspace, 0, "");
  // "OfxColourspace_<clip>" points at another clip's colourspace: this node has no other input.
  if (name.rfind("OfxColourspace_", 0) == 0) return "";
  // Native-style roles (ofx_scene_linear, ofx_compositing_log, ...) are OCIO roles with a prefix.
  if (name.rfind("ofx_", 0) == 0) name.erase(0, 4);
  return name;
}

// The request for the whole source frame at its render scale (docs/protocol.md, RENDER).
protocol::FrameRequest make_request(const Instance& inst, const Settings& settings, const HostImage& src, OfxTime time,
                                    double scale, OfxPropertySetHandle in_args) {
  protocol::FrameRequest request;
  request.clip = inst.clip_name;
  request.frame = std::llround(time);
  request.model = settings.model;
  request.width = src.width();
  request.height = src.height();
  request.scale = scale;
  request.channels = src.channels;
  request.row_bytes = static_cast<int64_t>(src.width()) * src.channels * 4;
  request.colorspace = settings.colorspace.empty() ? host_colourspace(inst) : settings.colorspace;
  request.mix = settings.mix;
  request.temporal = settings.temporal && settings.radius > 0;
  request.radius = settings.radius;
  request.max_motion = settings.max_motion;
  request.tile = settings.tile;
  request.region = settings.region;
  request.exposure = settings.exposure;
  request.luma_denoise = settings.luma_denoise;
  request.chroma_denoise = settings.chroma_denoise;
  request.detail = settings.detail;
  request.interactive = props::get_int(in_args, kOfxImageEffectPropInteractiveRenderStatus, 0, 0) == 1;
  request.deadline_ms = static_cast<int64_t>(settings.timeout_s * 1000.0);
  return request;
}

// RENDER until a RESULT: resends once with the frames a NEED_FRAMES lists, and waits out BUSY
// answers while the timeout allows. Every other ERROR is thrown.
Reply render_request(const Instance& inst, DaemonClient& client, const protocol::FrameRequest& request,
                     const std::array<int, 4>& window, const std::vector<float>& centre, const Neighbourhood& hood,
                     std::vector<std::string> need, CallOptions options, const HostImage& src) {
  const auto start = std::chrono::steady_clock::now();
  const double timeout_s = options.timeout_s;
  bool resent_for_frames = false;
  while (true) {
    const std::vector<std::vector<float>> attached = fetch_needed(inst, hood, need, src);
    std::vector<BufferView> buffers{{centre.data(), centre.size() * sizeof(float)}};
    for (const std::vector<float>& b : attached) buffers.push_back({b.data(), b.size() * sizeof(float)});
    const std::string id = client.next_id("r");
    Reply reply = client.call(id, protocol::render(id, request, window, need), buffers, options);
    if (reply.header.type() != "ERROR") return reply;
    const protocol::Error error = protocol::parse_error(reply.header);
    // Frames can leave the daemon's cache between NEED and RENDER.
    if (error.code == "NEED_FRAMES" && !resent_for_frames) {
      need = error.need;
      resent_for_frames = true;
      continue;
    }
    // A full queue (a host rendering hundreds of thumbnails at once) is waited out.
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double pause = std::clamp(static_cast<double>(error.retry_after_ms), 10.0, 5000.0) / 1000.0;
    if (error.code == "BUSY" && waited + pause < timeout_s && !(options.aborted && options.aborted())) {
      std::this_thread::sleep_for(std::chrono::duration<double>(pause));
      options.timeout_s = timeout_s - waited - pause;
      continue;
    }
    throw daemon_error(error);
  }
}

// A daemon that predates a look control would ignore its key and render the default look, so the
// node would show a picture other than the one asked for: refuse, naming the fix.
void check_features(const protocol::Welcome& welcome, const protocol::FrameRequest& request, const std::string& address) {
  for (const std::string& feature : protocol::features_needed(request)) {
    if (welcome.has(feature)) continue;
    const std::string what = feature == "exposure" ? "Exposure" : "Luma denoise, Chroma denoise and Detail";
    const std::string reset = feature == "exposure" ? "set Exposure to 0" : "set Luma/Chroma denoise to 1 and Detail to 0";
    throw BridgeError(Failure::BadSetting, "NightGrade: the daemon at " + address + " (" + welcome.server +
                                               ") predates " + what + ": update NightGrade on the daemon's machine "
                                               "and restart `nightgrade serve`, or " + reset);
  }
}

}  // namespace

void render_frame(Instance& inst, OfxPropertySetHandle in_args) {
  const HostSuites& s = suites();
  const OfxTime time = props::get_double(in_args, kOfxPropTime, 0, 0.0);
  int w[4];
  if (!props::get_ints(in_args, kOfxImageEffectPropRenderWindow, 4, w)) {
    throw BridgeError(Failure::HostImage, "NightGrade: the host's render call has no render window; report this to the host's vendor");
  }
  const OfxRectI render_window{w[0], w[1], w[2], w[3]};
  const Settings settings = read_settings(inst.params, time);

  FetchedImage output(inst.output, time);
  if (output.get() == nullptr) {
    throw BridgeError(Failure::HostImage, "NightGrade: the host gave no output image to render into at frame " +
                                              std::to_string(std::llround(time)) + "; render again");
  }
  const HostImage out = describe_image(output.get(), "output");
  FetchedImage source(inst.source, time);
  if (source.get() == nullptr) {
    throw BridgeError(Failure::HostImage, "NightGrade: the host gave no source image at frame " +
                                              std::to_string(std::llround(time)) + ": connect an input clip");
  }
  const HostImage src = describe_image(source.get(), "source");
  const double scale = render_scale(inst, time, in_args, source.get(), src);

  // The part of the render window the source covers, in the daemon's top-left buffer coordinates.
  const OfxRectI covered{std::max(render_window.x1, src.bounds.x1), std::max(render_window.y1, src.bounds.y1),
                         std::min(render_window.x2, src.bounds.x2), std::min(render_window.y2, src.bounds.y2)};
  if (covered.x1 >= covered.x2 || covered.y1 >= covered.y2) {
    fill_black(out, render_window);
    return;
  }
  if (covered.x1 != render_window.x1 || covered.y1 != render_window.y1 || covered.x2 != render_window.x2 ||
      covered.y2 != render_window.y2) {
    fill_black(out, render_window);  // outside the source there is nothing to enhance
  }
  const std::array<int, 4> window{covered.x1 - src.bounds.x1, src.bounds.y2 - covered.y2, covered.x2 - src.bounds.x1,
                                  src.bounds.y2 - covered.y1};

  protocol::FrameRequest request = make_request(inst, settings, src, time, scale, in_args);
  const bool original_view = settings.view == param::View::Original;  // the "before": no daemon needed
  Digest digest;
  const std::vector<float> centre = to_top_down(src, original_view ? nullptr : &digest);  // no hash for it
  source.release();  // the host's copy is no longer needed
  const int rows = covered.y2 - covered.y1, cols = covered.x2 - covered.x1;
  if (original_view) {
    const std::vector<float> original = original_window(centre, src.width(), src.channels, window);
    write_top_down(out, covered.x1, covered.y2 - 1, cols, rows, original.data(), src.channels,
                   static_cast<size_t>(cols) * src.channels * sizeof(float));
    report_success(inst, "Frame " + std::to_string(request.frame) + ": View is Original, the input untouched");
    return;
  }
  request.digest = digest.finish();

  Neighbourhood hood;
  if (request.temporal) {
    hood = gather_neighbours(inst, time, settings.radius, src, request.digest);
    for (const Neighbour& n : hood.frames) request.neighbours.emplace_back(n.frame, n.digest);
  }

  CallOptions options;
  options.timeout_s = settings.timeout_s;
  options.heartbeat_s = settings.heartbeat_s;
  options.aborted = [&inst, &s] { return s.effect->abort != nullptr && s.effect->abort(inst.handle) != 0; };
  ClientLease client(inst, settings.address, load_curve_keys(settings.curve_server_key, settings.curve_client_key));
  const protocol::Welcome welcome = ensure_welcome(inst, *client, options);
  check_features(welcome, request, settings.address);

  // Ask which neighbours the daemon lacks, so only those travel.
  std::vector<std::string> need;
  if (!request.neighbours.empty()) {
    std::vector<std::string> digests;
    for (const Neighbour& n : hood.frames) digests.push_back(n.digest);
    const std::string id = client->next_id("q");
    Reply reply = client->call(id, protocol::have(id, request, digests), {}, options);
    if (reply.header.type() == "ERROR") throw daemon_error(protocol::parse_error(reply.header));
    protocol::expect_type(reply.header, "NEED");
    need = reply.header.strings("need");
  }

  const Reply reply = render_request(inst, *client, request, window, centre, hood, need, options, src);
  const protocol::Result result = protocol::parse_result(reply.header);
  check_result(result, reply, window, src.channels);
  const float* enhanced = reinterpret_cast<const float*>(reply.buffers[0].data());
  if (settings.view == param::View::Split) {
    const int split_col = static_cast<int>(std::lround(settings.split * src.width()));
    const std::vector<float> both = split_view(centre, src.width(), src.channels, window, enhanced,
                                               static_cast<size_t>(result.row_bytes), split_col);
    write_top_down(out, covered.x1, covered.y2 - 1, cols, rows, both.data(), src.channels,
                   static_cast<size_t>(cols) * src.channels * sizeof(float));
  } else {
    write_top_down(out, covered.x1, covered.y2 - 1, cols, rows, enhanced, src.channels,
                   static_cast<size_t>(result.row_bytes));
  }
  report_success(inst, describe_success(welcome, settings.address, request.frame, result, hood, request.temporal,
                                        request.colorspace));
}

}  // namespace nightgrade::ofx
