package e2e_test

// quotaMetricsAddr is where luod serves its metrics in TestVMQuotaAndMetrics.
const quotaMetricsAddr = "127.0.0.1:9561"
