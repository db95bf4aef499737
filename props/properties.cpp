// Every property of the list (property_list.cpp) as a Catch2 test case, named by its sentence
// and tagged with its id, in the list's order: Catch2's filters, reporters and --list-tests
// then work on properties.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "props/property.h"
#include "props/runner.h"

namespace miniinfer::props {
namespace {

class PropertyInvoker final : public Catch::ITestInvoker {
 public:
  explicit PropertyInvoker(const Property& p) : p_(p) {}
  void invoke() const override {
    const bool property_holds = check_property(p_);
    p_.after_run();
    REQUIRE(property_holds);
  }

 private:
  const Property& p_;
};

// Catch2 keeps StringRefs to the names and tags: they live as long as the program.
struct Registration {
  Registration() {
    for (const Property* p : all_properties()) {
      const PropertyInfo& info = p->info();
      names.push_back(info.test_name ? info.test_name : info.statement);
      tags.push_back("[" + std::string(info.id) + "]");
    }
    for (size_t i = 0; i < names.size(); ++i)
      Catch::AutoReg(new PropertyInvoker(*all_properties()[i]), CATCH_INTERNAL_LINEINFO, Catch::StringRef(),
                     Catch::NameAndTags(names[i], tags[i]));
  }
  std::vector<std::string> names, tags;
};
const Registration registration;

}  // namespace
}  // namespace miniinfer::props
