#include "http/metadata_store.h"

#include <gtest/gtest.h>

#include "common/error_code.h"

namespace mooncake::http {
namespace {

TEST(MetadataStoreTest, PutGetReplaceDelete) {
  MetadataStore store;
  ASSERT_TRUE(store.Put("k", "v1").ok());
  EXPECT_EQ(*store.Get("k"), "v1");
  ASSERT_TRUE(store.Put("k", "value2").ok());
  EXPECT_EQ(*store.Get("k"), "value2");
  EXPECT_EQ(store.key_count(), 1u);
  EXPECT_EQ(store.total_bytes(), 7u);
  ASSERT_TRUE(store.Delete("k").ok());
  EXPECT_EQ(ErrorCodeOf(store.Get("k").status()), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(ErrorCodeOf(store.Delete("k")), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(store.total_bytes(), 0u);
}

TEST(MetadataStoreTest, ValuesAreOpaqueBytes) {
  MetadataStore store;
  std::string binary("\0\xff\x01 {not json", 14);
  ASSERT_TRUE(store.Put(std::string("key\0with nul", 12), binary).ok());
  EXPECT_EQ(*store.Get(std::string("key\0with nul", 12)), binary);
  ASSERT_TRUE(store.Put("empty", "").ok());
  EXPECT_EQ(*store.Get("empty"), "");
}

TEST(MetadataStoreTest, EnforcesLimits) {
  MetadataStore store({.max_key_bytes = 8, .max_value_bytes = 10, .max_total_bytes = 24});
  EXPECT_EQ(ErrorCodeOf(store.Put("", "v")), ErrorCode::INVALID_KEY);
  EXPECT_EQ(ErrorCodeOf(store.Put("123456789", "v")), ErrorCode::INVALID_KEY);
  EXPECT_EQ(ErrorCodeOf(store.Put("k", std::string(11, 'x'))), ErrorCode::BUFFER_OVERFLOW);
  ASSERT_TRUE(store.Put("a", std::string(10, 'x')).ok());  // 11 bytes
  ASSERT_TRUE(store.Put("b", std::string(10, 'x')).ok());  // 22 bytes
  EXPECT_EQ(ErrorCodeOf(store.Put("c", "xx")), ErrorCode::NO_AVAILABLE_HANDLE);
  // Replacing in place is judged by the net change, and a refused put keeps the old value.
  ASSERT_TRUE(store.Put("b", std::string(9, 'y')).ok());
  EXPECT_EQ(ErrorCodeOf(store.Put("a", std::string(10, 'z'))), ErrorCode::OK);
  EXPECT_EQ(store.total_bytes(), 21u);
  EXPECT_EQ(ErrorCodeOf(store.Put("c", "1234")), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_EQ(*store.Get("b"), std::string(9, 'y'));
}

}  // namespace
}  // namespace mooncake::http
