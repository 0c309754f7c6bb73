// The object table's key: bytes in the slot up to ObjectKey::kInline, on the heap beyond.
#include "master/object_key.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/strings.h"

namespace mooncake::master {
namespace {

using Table = absl::flat_hash_map<ObjectKey, int, ObjectKeyHash, ObjectKeyEq>;

// Keys at and around the inline limit, empty, with NUL bytes (other tenants' keys begin with one)
// and long ones: each is found by its bytes, and only by them.
TEST(ObjectKeyTest, EveryLengthIsFoundByItsBytes) {
  std::vector<std::string> keys = {"", std::string(1, '\0'), std::string("\0t\0k", 4)};
  for (size_t n : {size_t{1}, size_t{15}, size_t{16}, size_t{68}, ObjectKey::kInline - 1,
                   ObjectKey::kInline, ObjectKey::kInline + 1, size_t{4096}}) {
    keys.push_back(std::string(n, 'a'));
    keys.push_back(std::string(n - 1, 'a') + 'b');  // differs in its last byte only
  }
  Table table;
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(table.emplace(ObjectKey(keys[i]), static_cast<int>(i)).second) << i;
  }
  ASSERT_EQ(table.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = table.find(AsAbsl(keys[i]));
    ASSERT_NE(it, table.end()) << i;
    EXPECT_EQ(it->second, static_cast<int>(i));
    EXPECT_EQ(it->first.view(), keys[i]);
    EXPECT_EQ(it->first.size(), keys[i].size());
    EXPECT_EQ(ObjectKeyHash()(it->first), ObjectKeyHash()(AsAbsl(keys[i])));
  }
  EXPECT_EQ(table.find(absl::string_view("a\0", 2)), table.end());
  EXPECT_EQ(table.find(AsAbsl(std::string(ObjectKey::kInline + 2, 'a'))), table.end());
  // The table's growth moves every key (inline and heap ones); erasing frees them.
  for (int i = 0; i < 5000; ++i) table.emplace(ObjectKey("grow" + std::to_string(i)), i);
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = table.find(AsAbsl(keys[i]));
    ASSERT_NE(it, table.end()) << i;
    EXPECT_EQ(it->first.view(), keys[i]);
    table.erase(it);
  }
  EXPECT_EQ(table.size(), 5000u);
}

TEST(ObjectKeyTest, CopiesAndMovesKeepTheBytes) {
  for (const std::string& key : {std::string("short"), std::string(200, 'x')}) {
    ObjectKey a(key);
    ObjectKey b(a);  // a copy owns bytes of its own
    ObjectKey c(std::move(a));
    EXPECT_EQ(b.view(), key);
    EXPECT_EQ(c.view(), key);
    EXPECT_EQ(std::string_view(c), key);
    EXPECT_TRUE(ObjectKeyEq()(b, c));
    EXPECT_TRUE(ObjectKeyEq()(c, AsAbsl(key)));
    EXPECT_FALSE(ObjectKeyEq()(c, absl::string_view("other")));
  }
}

}  // namespace
}  // namespace mooncake::master
