#include "remora/components/secretstores/secretstore.h"

#include <algorithm>

#include "remora/components/common/strings.h"

namespace remora::components::secretstores {

const char* FeatureName(Feature feature) {
  switch (feature) {
    case Feature::kMultipleKeyValuesPerSecret:
      return "MULTIPLE_KEY_VALUES_PER_SECRET";
  }
  return "UNKNOWN";
}

bool SecretStore::HasFeature(Feature feature) const {
  std::vector<Feature> features = Features();
  return std::find(features.begin(), features.end(), feature) != features.end();
}

absl::Status SecretNotFoundError(std::string_view name, std::string_view detail) {
  return MakeStatus(absl::StatusCode::kNotFound,
                    detail.empty() ? StrCat("secret ", name, " not found")
                                   : StrCat("secret ", name, " not found: ", detail));
}

bool IsSecretNotFound(const absl::Status& status) {
  return status.code() == absl::StatusCode::kNotFound;
}

}  // namespace remora::components::secretstores
