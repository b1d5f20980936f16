#include "props.h"

#include "suites.h"

namespace nightgrade::ofx::props {

static const OfxPropertySuiteV1* suite(OfxPropertySetHandle set) {
  return set == nullptr ? nullptr : suites().property;
}

int get_int(OfxPropertySetHandle set, const char* name, int index, int fallback) {
  const OfxPropertySuiteV1* p = suite(set);
  int value = fallback;
  if (p == nullptr || p->propGetInt(set, name, index, &value) != kOfxStatOK) return fallback;
  return value;
}

double get_double(OfxPropertySetHandle set, const char* name, int index, double fallback) {
  const OfxPropertySuiteV1* p = suite(set);
  double value = fallback;
  if (p == nullptr || p->propGetDouble(set, name, index, &value) != kOfxStatOK) return fallback;
  return value;
}

std::string get_string(OfxPropertySetHandle set, const char* name, int index, const std::string& fallback) {
  const OfxPropertySuiteV1* p = suite(set);
  char* value = nullptr;
  if (p == nullptr || p->propGetString(set, name, index, &value) != kOfxStatOK || value == nullptr) {
    return fallback;
  }
  return value;
}

void* get_pointer(OfxPropertySetHandle set, const char* name, int index) {
  const OfxPropertySuiteV1* p = suite(set);
  void* value = nullptr;
  if (p == nullptr || p->propGetPointer(set, name, index, &value) != kOfxStatOK) return nullptr;
  return value;
}

int dimension(OfxPropertySetHandle set, const char* name) {
  const OfxPropertySuiteV1* p = suite(set);
  int count = 0;
  if (p == nullptr || p->propGetDimension(set, name, &count) != kOfxStatOK) return 0;
  return count;
}

bool get_ints(OfxPropertySetHandle set, const char* name, int count, int* out) {
  const OfxPropertySuiteV1* p = suite(set);
  if (p == nullptr || dimension(set, name) < count) return false;
  std::vector<int> values(static_cast<size_t>(count));
  if (p->propGetIntN(set, name, count, values.data()) != kOfxStatOK) return false;
  for (int i = 0; i < count; ++i) out[i] = values[static_cast<size_t>(i)];
  return true;
}

bool get_doubles(OfxPropertySetHandle set, const char* name, int count, double* out) {
  const OfxPropertySuiteV1* p = suite(set);
  if (p == nullptr || dimension(set, name) < count) return false;
  std::vector<double> values(static_cast<size_t>(count));
  if (p->propGetDoubleN(set, name, count, values.data()) != kOfxStatOK) return false;
  for (int i = 0; i < count; ++i) out[i] = values[static_cast<size_t>(i)];
  return true;
}

bool set_int(OfxPropertySetHandle set, const char* name, int index, int value) {
  const OfxPropertySuiteV1* p = suite(set);
  return p != nullptr && p->propSetInt(set, name, index, value) == kOfxStatOK;
}

bool set_double(OfxPropertySetHandle set, const char* name, int index, double value) {
  const OfxPropertySuiteV1* p = suite(set);
  return p != nullptr && p->propSetDouble(set, name, index, value) == kOfxStatOK;
}

bool set_string(OfxPropertySetHandle set, const char* name, int index, const std::string& value) {
  const OfxPropertySuiteV1* p = suite(set);
  return p != nullptr && p->propSetString(set, name, index, value.c_str()) == kOfxStatOK;
}

bool set_pointer(OfxPropertySetHandle set, const char* name, int index, void* value) {
  const OfxPropertySuiteV1* p = suite(set);
  return p != nullptr && p->propSetPointer(set, name, index, value) == kOfxStatOK;
}

bool set_strings(OfxPropertySetHandle set, const char* name, const std::vector<std::string>& values) {
  const OfxPropertySuiteV1* p = suite(set);
  if (p == nullptr) return false;
  std::vector<const char*> raw;
  raw.reserve(values.size());
  for (const std::string& v : values) raw.push_back(v.c_str());
  return p->propSetStringN(set, name, static_cast<int>(raw.size()), raw.data()) == kOfxStatOK;
}

bool set_doubles(OfxPropertySetHandle set, const char* name, const std::vector<double>& values) {
  const OfxPropertySuiteV1* p = suite(set);
  return p != nullptr &&
         p->propSetDoubleN(set, name, static_cast<int>(values.size()), values.data()) == kOfxStatOK;
}

}  // namespace nightgrade::ofx::props
