package cli

// CompareVersions is compareVersions, for tests.
var CompareVersions = compareVersions
