#include "property_set.h"

#include "host_log.h"

namespace testhost {

size_t Property::size() const {
  switch (type) {
    case Type::Int: return ints.size();
    case Type::Double: return doubles.size();
    case Type::String: return strings.size();
    case Type::Pointer: return pointers.size();
  }
  return 0;
}

void PropertySet::set_int(const std::string& name, std::vector<int> values) {
  Property& p = props_[name];
  p = Property{};
  p.type = Property::Type::Int;
  p.ints = std::move(values);
}

void PropertySet::set_double(const std::string& name, std::vector<double> values) {
  Property& p = props_[name];
  p = Property{};
  p.type = Property::Type::Double;
  p.doubles = std::move(values);
}

void PropertySet::set_string(const std::string& name, std::vector<std::string> values) {
  Property& p = props_[name];
  p = Property{};
  p.type = Property::Type::String;
  p.strings = std::move(values);
}

void PropertySet::set_pointer(const std::string& name, std::vector<void*> values) {
  Property& p = props_[name];
  p = Property{};
  p.type = Property::Type::Pointer;
  p.pointers = std::move(values);
}

void PropertySet::declare(const std::string& name, Property::Type type) {
  Property& p = props_[name];
  p = Property{};
  p.type = type;
}

const Property* PropertySet::find(const std::string& name) const {
  auto it = props_.find(name);
  return it == props_.end() ? nullptr : &it->second;
}

Property* PropertySet::find(const std::string& name) {
  auto it = props_.find(name);
  return it == props_.end() ? nullptr : &it->second;
}

int PropertySet::get_int(const std::string& name, int index, int fallback) const {
  const Property* p = find(name);
  if (p == nullptr || p->type != Property::Type::Int || index >= static_cast<int>(p->ints.size())) return fallback;
  return p->ints[static_cast<size_t>(index)];
}

double PropertySet::get_double(const std::string& name, int index, double fallback) const {
  const Property* p = find(name);
  if (p == nullptr || p->type != Property::Type::Double || index >= static_cast<int>(p->doubles.size())) return fallback;
  return p->doubles[static_cast<size_t>(index)];
}

std::string PropertySet::get_string(const std::string& name, int index, const std::string& fallback) const {
  const Property* p = find(name);
  if (p == nullptr || p->type != Property::Type::String || index >= static_cast<int>(p->strings.size())) return fallback;
  return p->strings[static_cast<size_t>(index)];
}

void* PropertySet::get_pointer(const std::string& name, int index) const {
  const Property* p = find(name);
  if (p == nullptr || p->type != Property::Type::Pointer || index >= static_cast<int>(p->pointers.size())) return nullptr;
  return p->pointers[static_cast<size_t>(index)];
}

void PropertySet::copy_from(const PropertySet& other) {
  for (const auto& [name, value] : other.props_) props_[name] = value;
}

namespace {

const char* type_name(Property::Type t) {
  switch (t) {
    case Property::Type::Int: return "int";
    case Property::Type::Double: return "double";
    case Property::Type::String: return "string";
    case Property::Type::Pointer: return "pointer";
  }
  return "?";
}

template <typename T>
std::vector<T>& values_of(Property& p);
template <>
std::vector<int>& values_of<int>(Property& p) { return p.ints; }
template <>
std::vector<double>& values_of<double>(Property& p) { return p.doubles; }
template <>
std::vector<std::string>& values_of<std::string>(Property& p) { return p.strings; }
template <>
std::vector<void*>& values_of<void*>(Property& p) { return p.pointers; }

// Setting creates the property with the given type (descriptors are open-ended), but a property
// that already has another type is a plug-in bug.
template <typename T>
OfxStatus set_at(OfxPropertySetHandle h, const char* name, int index, const T& value, Property::Type type) {
  if (h == nullptr || name == nullptr) return kOfxStatErrBadHandle;
  PropertySet* set = PropertySet::from(h);
  Property* p = set->find(name);
  if (p == nullptr) {
    set->declare(name, type);
    p = set->find(name);
  }
  if (p->type != type) {
    log_violation(std::string("set ") + type_name(type) + " on " + type_name(p->type) + " property " + name + " of " + set->label());
    return kOfxStatErrValue;
  }
  std::vector<T>& values = values_of<T>(*p);
  if (index < 0 || index > static_cast<int>(values.size())) return kOfxStatErrBadIndex;
  if (index == static_cast<int>(values.size())) values.push_back(value);
  else values[static_cast<size_t>(index)] = value;
  return kOfxStatOK;
}

template <typename T>
OfxStatus get_at(OfxPropertySetHandle h, const char* name, int index, T* out, Property::Type type) {
  if (h == nullptr || name == nullptr || out == nullptr) return kOfxStatErrBadHandle;
  PropertySet* set = PropertySet::from(h);
  Property* p = set->find(name);
  if (p == nullptr) return kOfxStatErrUnknown;
  if (p->type != type) {
    log_violation(std::string("get ") + type_name(type) + " of " + type_name(p->type) + " property " + name + " of " + set->label());
    return kOfxStatErrValue;
  }
  std::vector<T>& values = values_of<T>(*p);
  if (index < 0 || index >= static_cast<int>(values.size())) return kOfxStatErrBadIndex;
  *out = values[static_cast<size_t>(index)];
  return kOfxStatOK;
}

OfxStatus setPointer(OfxPropertySetHandle h, const char* n, int i, void* v) { return set_at<void*>(h, n, i, v, Property::Type::Pointer); }
OfxStatus setString(OfxPropertySetHandle h, const char* n, int i, const char* v) {
  if (v == nullptr) return kOfxStatErrValue;
  return set_at<std::string>(h, n, i, std::string(v), Property::Type::String);
}
OfxStatus setDouble(OfxPropertySetHandle h, const char* n, int i, double v) { return set_at<double>(h, n, i, v, Property::Type::Double); }
OfxStatus setInt(OfxPropertySetHandle h, const char* n, int i, int v) { return set_at<int>(h, n, i, v, Property::Type::Int); }

template <typename T, typename In>
OfxStatus set_n(OfxPropertySetHandle h, const char* n, int count, In values, Property::Type type) {
  if (count < 0 || (count > 0 && values == nullptr)) return kOfxStatErrValue;
  for (int i = 0; i < count; ++i) {
    OfxStatus s = set_at<T>(h, n, i, T(values[i]), type);
    if (s != kOfxStatOK) return s;
  }
  return kOfxStatOK;
}
OfxStatus setPointerN(OfxPropertySetHandle h, const char* n, int c, void* const* v) { return set_n<void*>(h, n, c, v, Property::Type::Pointer); }
OfxStatus setStringN(OfxPropertySetHandle h, const char* n, int c, const char* const* v) { return set_n<std::string>(h, n, c, v, Property::Type::String); }
OfxStatus setDoubleN(OfxPropertySetHandle h, const char* n, int c, const double* v) { return set_n<double>(h, n, c, v, Property::Type::Double); }
OfxStatus setIntN(OfxPropertySetHandle h, const char* n, int c, const int* v) { return set_n<int>(h, n, c, v, Property::Type::Int); }

OfxStatus getPointer(OfxPropertySetHandle h, const char* n, int i, void** v) { return get_at<void*>(h, n, i, v, Property::Type::Pointer); }
OfxStatus getString(OfxPropertySetHandle h, const char* n, int i, char** v) {
  if (h == nullptr || n == nullptr || v == nullptr) return kOfxStatErrBadHandle;
  Property* p = PropertySet::from(h)->find(n);
  if (p == nullptr) return kOfxStatErrUnknown;
  if (p->type != Property::Type::String) {
    log_violation(std::string("get string of ") + type_name(p->type) + " property " + n);
    return kOfxStatErrValue;
  }
  if (i < 0 || i >= static_cast<int>(p->strings.size())) return kOfxStatErrBadIndex;
  *v = const_cast<char*>(p->strings[static_cast<size_t>(i)].c_str());
  return kOfxStatOK;
}
OfxStatus getDouble(OfxPropertySetHandle h, const char* n, int i, double* v) { return get_at<double>(h, n, i, v, Property::Type::Double); }
OfxStatus getInt(OfxPropertySetHandle h, const char* n, int i, int* v) { return get_at<int>(h, n, i, v, Property::Type::Int); }

OfxStatus getPointerN(OfxPropertySetHandle h, const char* n, int c, void** v) {
  for (int i = 0; i < c; ++i) {
    OfxStatus s = getPointer(h, n, i, v + i);
    if (s != kOfxStatOK) return s;
  }
  return kOfxStatOK;
}
OfxStatus getStringN(OfxPropertySetHandle h, const char* n, int c, char** v) {
  for (int i = 0; i < c; ++i) {
    OfxStatus s = getString(h, n, i, v + i);
    if (s != kOfxStatOK) return s;
  }
  return kOfxStatOK;
}
OfxStatus getDoubleN(OfxPropertySetHandle h, const char* n, int c, double* v) {
  for (int i = 0; i < c; ++i) {
    OfxStatus s = getDouble(h, n, i, v + i);
    if (s != kOfxStatOK) return s;
  }
  return kOfxStatOK;
}
OfxStatus getIntN(OfxPropertySetHandle h, const char* n, int c, int* v) {
  for (int i = 0; i < c; ++i) {
    OfxStatus s = getInt(h, n, i, v + i);
    if (s != kOfxStatOK) return s;
  }
  return kOfxStatOK;
}

OfxStatus reset(OfxPropertySetHandle h, const char* n) {
  if (h == nullptr || n == nullptr) return kOfxStatErrBadHandle;
  Property* p = PropertySet::from(h)->find(n);
  if (p == nullptr) return kOfxStatErrUnknown;
  const Property::Type type = p->type;
  *p = Property{};
  p->type = type;
  return kOfxStatOK;
}

OfxStatus getDimension(OfxPropertySetHandle h, const char* n, int* count) {
  if (h == nullptr || n == nullptr || count == nullptr) return kOfxStatErrBadHandle;
  const Property* p = PropertySet::from(h)->find(n);
  if (p == nullptr) return kOfxStatErrUnknown;
  *count = static_cast<int>(p->size());
  return kOfxStatOK;
}

const OfxPropertySuiteV1 kSuite = {setPointer, setString, setDouble, setInt, setPointerN, setStringN,
                                   setDoubleN, setIntN, getPointer, getString, getDouble, getInt,
                                   getPointerN, getStringN, getDoubleN, getIntN, reset, getDimension};

}  // namespace

const OfxPropertySuiteV1* property_suite() { return &kSuite; }

}  // namespace testhost
