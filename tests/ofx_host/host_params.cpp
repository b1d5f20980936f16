#include "host_params.h"

#include <cstdarg>
#include <cstdlib>

#include "host_log.h"

namespace testhost {

namespace {

bool g_in_render = false;

bool is_int_type(const std::string& t) {
  return t == kOfxParamTypeInteger || t == kOfxParamTypeBoolean || t == kOfxParamTypeChoice;
}

// Hosts create the typed properties of a parameter at definition: a plug-in setting, say, a
// double default on an integer parameter then gets an error.
void declare_typed(Param& p) {
  const char* ranged[] = {kOfxParamPropDefault, kOfxParamPropMin, kOfxParamPropMax, kOfxParamPropDisplayMin,
                          kOfxParamPropDisplayMax};
  if (p.type == kOfxParamTypeInteger) {
    for (const char* name : ranged) p.props.declare(name, Property::Type::Int);
  } else if (p.type == kOfxParamTypeDouble) {
    for (const char* name : ranged) p.props.declare(name, Property::Type::Double);
  } else if (p.type == kOfxParamTypeBoolean || p.type == kOfxParamTypeChoice) {
    p.props.declare(kOfxParamPropDefault, Property::Type::Int);
  } else if (p.type == kOfxParamTypeString) {
    p.props.declare(kOfxParamPropDefault, Property::Type::String);
  }
  if (p.type == kOfxParamTypeChoice) p.props.declare(kOfxParamPropChoiceOption, Property::Type::String);
  p.props.set_string(kOfxParamPropType, {p.type});
  p.props.set_string(kOfxPropName, {p.name});
  p.props.set_string(kOfxPropType, {kOfxTypeParameter});
}

}  // namespace

std::string Param::value_text() const {
  if (is_int_type(type)) return std::to_string(int_value);
  if (type == kOfxParamTypeDouble) return std::to_string(double_value);
  return string_value;
}

bool Param::set_from_text(const std::string& text) {
  if (is_int_type(type)) int_value = std::atoi(text.c_str());
  else if (type == kOfxParamTypeDouble) double_value = std::atof(text.c_str());
  else if (type == kOfxParamTypeString) string_value = text;
  else return false;
  return true;
}

Param* ParamSet::define(const std::string& type, const std::string& name) {
  if (find(name) != nullptr) return nullptr;
  params_.push_back(std::make_unique<Param>(type, name));
  declare_typed(*params_.back());
  return params_.back().get();
}

Param* ParamSet::find(const std::string& name) {
  for (auto& p : params_) {
    if (p->name == name) return p.get();
  }
  return nullptr;
}

void ParamSet::instantiate_from(const ParamSet& descriptors) {
  for (const auto& d : descriptors.params_) {
    auto p = std::make_unique<Param>(d->type, d->name);
    p->props.copy_from(d->props);
    p->props.set_string(kOfxPropType, {kOfxTypeParameterInstance});
    p->int_value = p->props.get_int(kOfxParamPropDefault, 0, 0);
    p->double_value = p->props.get_double(kOfxParamPropDefault, 0, 0.0);
    p->string_value = p->props.get_string(kOfxParamPropDefault, 0, "");
    params_.push_back(std::move(p));
  }
}

void set_in_render(bool in_render) { g_in_render = in_render; }

namespace {

Param* param_of(OfxParamHandle h) { return reinterpret_cast<Param*>(h); }

OfxStatus paramDefine(OfxParamSetHandle set, const char* type, const char* name, OfxPropertySetHandle* props) {
  if (set == nullptr || type == nullptr || name == nullptr) return kOfxStatErrBadHandle;
  Param* p = ParamSet::from(set)->define(type, name);
  if (p == nullptr) return kOfxStatErrExists;
  if (props != nullptr) *props = p->props.handle();
  return kOfxStatOK;
}

OfxStatus paramGetHandle(OfxParamSetHandle set, const char* name, OfxParamHandle* param, OfxPropertySetHandle* props) {
  if (set == nullptr || name == nullptr || param == nullptr) return kOfxStatErrBadHandle;
  Param* p = ParamSet::from(set)->find(name);
  if (p == nullptr) return kOfxStatErrUnknown;
  *param = p->handle();
  if (props != nullptr) *props = p->props.handle();
  return kOfxStatOK;
}

OfxStatus paramSetGetPropertySet(OfxParamSetHandle set, OfxPropertySetHandle* props) {
  if (set == nullptr || props == nullptr) return kOfxStatErrBadHandle;
  *props = ParamSet::from(set)->props().handle();
  return kOfxStatOK;
}

OfxStatus paramGetPropertySet(OfxParamHandle param, OfxPropertySetHandle* props) {
  if (param == nullptr || props == nullptr) return kOfxStatErrBadHandle;
  *props = param_of(param)->props.handle();
  return kOfxStatOK;
}

OfxStatus get_value(Param* p, va_list args) {
  if (is_int_type(p->type)) {
    *va_arg(args, int*) = p->int_value;
  } else if (p->type == kOfxParamTypeDouble) {
    *va_arg(args, double*) = p->double_value;
  } else if (p->type == kOfxParamTypeString) {
    *va_arg(args, char**) = const_cast<char*>(p->string_value.c_str());
  } else {
    return kOfxStatErrUnsupported;
  }
  return kOfxStatOK;
}

OfxStatus paramGetValue(OfxParamHandle param, ...) {
  if (param == nullptr) return kOfxStatErrBadHandle;
  va_list args;
  va_start(args, param);
  const OfxStatus s = get_value(param_of(param), args);
  va_end(args);
  return s;
}

OfxStatus paramGetValueAtTime(OfxParamHandle param, OfxTime time, ...) {
  if (param == nullptr) return kOfxStatErrBadHandle;
  va_list args;
  va_start(args, time);
  const OfxStatus s = get_value(param_of(param), args);  // nothing animates in this host
  va_end(args);
  return s;
}

OfxStatus set_value(Param* p, va_list args) {
  if (g_in_render) log_violation("paramSetValue on " + p->name + " during render");
  if (is_int_type(p->type)) {
    const int value = va_arg(args, int);
    // A host shows a choice by its option list: an index past it is a garbage entry on screen.
    const Property* options = p->type == kOfxParamTypeChoice ? p->props.find(kOfxParamPropChoiceOption) : nullptr;
    if (options != nullptr && (value < 0 || static_cast<size_t>(value) >= options->size())) {
      log_violation("choice " + p->name + " set to " + std::to_string(value) + " of " +
                    std::to_string(options->size()) + " options");
      return kOfxStatErrValue;
    }
    p->int_value = value;
  } else if (p->type == kOfxParamTypeDouble) {
    p->double_value = va_arg(args, double);
  } else if (p->type == kOfxParamTypeString) {
    const char* text = va_arg(args, const char*);
    if (text == nullptr) return kOfxStatErrValue;
    p->string_value = text;
  } else {
    return kOfxStatErrUnsupported;
  }
  log_line("PLUGINSET", p->name + " " + p->value_text());
  return kOfxStatOK;
}

OfxStatus paramSetValue(OfxParamHandle param, ...) {
  if (param == nullptr) return kOfxStatErrBadHandle;
  va_list args;
  va_start(args, param);
  const OfxStatus s = set_value(param_of(param), args);
  va_end(args);
  return s;
}

OfxStatus paramSetValueAtTime(OfxParamHandle param, OfxTime time, ...) {
  if (param == nullptr) return kOfxStatErrBadHandle;
  va_list args;
  va_start(args, time);
  const OfxStatus s = set_value(param_of(param), args);
  va_end(args);
  return s;
}

OfxStatus unsupported_time(OfxParamHandle, OfxTime, ...) { return kOfxStatErrUnsupported; }
OfxStatus unsupported_integral(OfxParamHandle, OfxTime, OfxTime, ...) { return kOfxStatErrUnsupported; }
OfxStatus numKeys(OfxParamHandle, unsigned int* n) {
  if (n != nullptr) *n = 0;
  return kOfxStatOK;
}
OfxStatus keyTime(OfxParamHandle, unsigned int, OfxTime*) { return kOfxStatErrBadIndex; }
OfxStatus keyIndex(OfxParamHandle, OfxTime, int, int*) { return kOfxStatFailed; }
OfxStatus deleteKey(OfxParamHandle, OfxTime) { return kOfxStatErrBadIndex; }
OfxStatus deleteAllKeys(OfxParamHandle) { return kOfxStatOK; }
OfxStatus copy(OfxParamHandle, OfxParamHandle, OfxTime, const OfxRangeD*) { return kOfxStatErrUnsupported; }
OfxStatus editBegin(OfxParamSetHandle, const char*) { return kOfxStatOK; }
OfxStatus editEnd(OfxParamSetHandle) { return kOfxStatOK; }

const OfxParameterSuiteV1 kSuite = {paramDefine, paramGetHandle, paramSetGetPropertySet, paramGetPropertySet,
                                    paramGetValue, paramGetValueAtTime, unsupported_time, unsupported_integral,
                                    paramSetValue, paramSetValueAtTime, numKeys, keyTime, keyIndex, deleteKey,
                                    deleteAllKeys, copy, editBegin, editEnd};

}  // namespace

const OfxParameterSuiteV1* parameter_suite() { return &kSuite; }

}  // namespace testhost
