#include "instance.h"

#include <algorithm>

#include "errors.h"
#include "ofx/image_effect.h"
#include "props.h"
#include "suites.h"

namespace nightgrade::ofx {

namespace {
constexpr size_t kMaxIdleClients = 4;
}

Instance* instance_of(OfxImageEffectHandle handle) {
  OfxPropertySetHandle set = nullptr;
  if (handle == nullptr || suites().effect->getPropertySet(handle, &set) != kOfxStatOK) return nullptr;
  return static_cast<Instance*>(props::get_pointer(set, kOfxPropInstanceData, 0));
}

ClientLease::ClientLease(Instance& instance, const std::string& address, const CurveKeys& keys)
    : instance_(instance) {
  std::lock_guard<std::mutex> lock(instance.pool_mutex);
  generation_ = instance.generation;
  auto match = std::find_if(instance.idle.begin(), instance.idle.end(),
                            [&](const std::unique_ptr<DaemonClient>& c) { return c->address() == address && c->keys() == keys; });
  if (match != instance.idle.end()) {
    client_ = std::move(*match);
    instance.idle.erase(match);
  } else {
    client_ = std::make_unique<DaemonClient>(address, keys);
  }
}

ClientLease::~ClientLease() {
  std::lock_guard<std::mutex> lock(instance_.pool_mutex);
  if (generation_ == instance_.generation && instance_.idle.size() < kMaxIdleClients) {
    instance_.idle.push_back(std::move(client_));
  }
  // Otherwise client_ is destroyed here, closing its socket with LINGER 0.
}

void reset_clients(Instance& instance) {
  std::vector<std::unique_ptr<DaemonClient>> closing;
  {
    std::lock_guard<std::mutex> lock(instance.pool_mutex);
    ++instance.generation;
    closing.swap(instance.idle);
  }
  std::lock_guard<std::mutex> lock(instance.state_mutex);
  instance.welcome.reset();
  instance.welcome_address.clear();
}

protocol::Welcome ensure_welcome(Instance& instance, DaemonClient& client, const CallOptions& options) {
  {
    std::lock_guard<std::mutex> lock(instance.state_mutex);
    if (instance.welcome && instance.welcome_address == client.address()) return *instance.welcome;
  }
  const std::string id = client.next_id("h");
  Reply reply = client.call(id, protocol::hello(id), {}, options);
  if (reply.header.type() == "ERROR") {
    const protocol::Error error = protocol::parse_error(reply.header);
    throw BridgeError(Failure::DaemonError,
                      "NightGrade: the daemon at " + client.address() + " refused this plug-in (" + error.code +
                          ": " + error.message + "): install the same NightGrade release for the daemon and the plug-in",
                      error.code);
  }
  protocol::Welcome welcome = protocol::parse_welcome(reply.header);
  std::lock_guard<std::mutex> lock(instance.state_mutex);
  instance.welcome = welcome;
  instance.welcome_address = client.address();
  ++instance.welcome_serial;
  return welcome;
}

void report_failure(Instance& instance, const std::string& message) {
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(instance.state_mutex);
    instance.status = message;
    if (instance.posted_error != message) {
      instance.posted_error = message;
      post = true;
    }
  }
  if (post) post_error(instance.handle, message);
}

void report_success(Instance& instance, const std::string& status) {
  bool clear = false;
  {
    std::lock_guard<std::mutex> lock(instance.state_mutex);
    instance.status = status;
    clear = !instance.posted_error.empty();
    instance.posted_error.clear();
  }
  if (clear) clear_error(instance.handle);
}

static std::string default_model_label(const protocol::Welcome& welcome) {
  for (const protocol::ModelInfo& m : welcome.models) {
    if (m.is_default) return "Default (" + m.name + ")";
  }
  return param::kDefaultModelLabel;
}

void publish_state(Instance& instance) {
  std::string status;
  std::optional<protocol::Welcome> welcome;
  {
    std::lock_guard<std::mutex> lock(instance.state_mutex);
    status = instance.status;
    if (status == instance.shown_status) status.clear();
    else instance.shown_status = status;
    // The option list is rewritten only when a new WELCOME arrived: hosts redraw the menu on it.
    if (instance.shown_serial != instance.welcome_serial) {
      welcome = instance.welcome;
      instance.shown_serial = instance.welcome_serial;
    }
  }
  if (!status.empty()) set_string_value(instance.params.status, status);
  if (!welcome || instance.params.model == nullptr) return;
  OfxPropertySetHandle choice = nullptr;
  if (suites().param->paramGetPropertySet(instance.params.model, &choice) != kOfxStatOK) return;
  std::vector<std::string> options{default_model_label(*welcome)};
  for (const protocol::ModelInfo& m : welcome->models) options.push_back(m.name);
  const std::string chosen = get_string_value(instance.params.model_name);
  int index = 0;
  if (!chosen.empty()) {
    // The index is taken before any push_back: push_back may reallocate and invalidate iterators.
    index = static_cast<int>(std::find(options.begin() + 1, options.end(), chosen) - options.begin());
    if (index == static_cast<int>(options.size())) options.push_back(chosen + " (not on this daemon)");
  }
  // Reset first so a shorter list does not keep the old tail.
  if (suites().property->propReset != nullptr) suites().property->propReset(choice, kOfxParamPropChoiceOption);
  for (size_t i = 0; i < options.size(); ++i) {
    props::set_string(choice, kOfxParamPropChoiceOption, static_cast<int>(i), options[i]);
  }
  if (get_int_value(instance.params.model, 0.0, 0) != index) set_int_value(instance.params.model, index);
}

void reconnect(Instance& instance, OfxTime time) {
  const Settings settings = read_settings(instance.params, time);
  reset_clients(instance);
  forget_unreachable(settings.address);
  try {
    ClientLease client(instance, settings.address, load_curve_keys(settings.curve_server_key, settings.curve_client_key));
    CallOptions options;
    options.timeout_s = settings.timeout_s;
    options.heartbeat_s = settings.heartbeat_s;
    const protocol::Welcome w = ensure_welcome(instance, *client, options);
    std::string text = "Connected to " + w.server + " on " + (w.device.empty() ? "an unknown device" : w.device) +
                       " at " + settings.address + ": " + std::to_string(w.models.size()) + " model(s)";
    report_success(instance, text);
  } catch (const BridgeError& error) {
    report_failure(instance, error.what());
  }
  publish_state(instance);
}

void remember_model_choice(Instance& instance, OfxTime time) {
  const int index = get_int_value(instance.params.model, time, 0);
  std::string name;
  if (index > 0) {
    OfxPropertySetHandle choice = nullptr;
    if (suites().param->paramGetPropertySet(instance.params.model, &choice) == kOfxStatOK) {
      name = props::get_string(choice, kOfxParamPropChoiceOption, index, "");
      const std::string missing = " (not on this daemon)";
      if (name.size() > missing.size() && name.compare(name.size() - missing.size(), missing.size(), missing) == 0) {
        name.resize(name.size() - missing.size());
      }
    }
  }
  if (get_string_value(instance.params.model_name) != name) set_string_value(instance.params.model_name, name);
}

}  // namespace nightgrade::ofx
