package unit

import (
	"strings"
	"sync"
)

// systemdKeys lists the keys systemd 262 knows in the sections luod reads
// (src/core/load-fragment-gperf.gperf.in, src/shared/install.c). A key in
// this list that luod does not implement draws a "not supported by luod"
// warning; a key in none of them draws an "unknown key" warning.
var systemdKeys = map[string]string{
	"Unit": `Description Documentation SourcePath Requires Requisite Wants BindsTo
		BindTo Upholds Conflicts Before After OnSuccess OnFailure PropagatesReloadTo
		PropagateReloadTo ReloadPropagatedFrom PropagateReloadFrom PropagatesStopTo
		StopPropagatedFrom PartOf JoinsNamespaceOf RequiresOverridable
		RequisiteOverridable RequiresMountsFor WantsMountsFor StopWhenUnneeded
		RefuseManualStart RefuseManualStop AllowIsolate DefaultDependencies
		SurviveFinalKillSignal OnSuccessJobMode OnFailureJobMode OnFailureIsolate
		IgnoreOnIsolate IgnoreOnSnapshot JobTimeoutSec JobRunningTimeoutSec
		JobTimeoutAction JobTimeoutRebootArgument StartLimitIntervalSec
		StartLimitInterval StartLimitBurst StartLimitAction FailureAction
		SuccessAction FailureActionExitStatus SuccessActionExitStatus RebootArgument
		CollectMode`,
	"Service": `PIDFile ExecCondition ExecStartPre ExecStart ExecReload ExecStartPost
		ExecStop ExecStopPost RestartSec RestartSteps RestartMaxDelaySec TimeoutSec
		TimeoutStartSec TimeoutStopSec TimeoutAbortSec TimeoutStartFailureMode
		TimeoutStopFailureMode RuntimeMaxSec RuntimeRandomizedExtraSec WatchdogSec
		StartLimitInterval StartLimitBurst StartLimitAction FailureAction
		RebootArgument Type ExitType Restart RestartMode PermissionsStartOnly
		RootDirectoryStartOnly RemainAfterExit GuessMainPID RestartPreventExitStatus
		RestartForceExitStatus SuccessExitStatus SysVStartPriority NonBlocking
		BusName FileDescriptorStoreMax FileDescriptorStorePreserve NotifyAccess
		Sockets BusPolicy USBFunctionDescriptors USBFunctionStrings OOMPolicy
		OpenFile ReloadSignal LUOSession

		WorkingDirectory RootDirectory RootImage RootImageOptions RootImagePolicy
		RootHash RootHashSignature RootVerity RootEphemeral ExtensionDirectories
		ExtensionImages ExtensionImagePolicy MountImages MountImagePolicy User
		Group SupplementaryGroups SetLoginEnvironment Nice OOMScoreAdjust
		CoredumpFilter IOSchedulingClass IOSchedulingPriority CPUSchedulingPolicy
		CPUSchedulingPriority CPUSchedulingResetOnFork CPUAffinity NUMAPolicy
		NUMAMask UMask Environment EnvironmentFile PassEnvironment
		UnsetEnvironment DynamicUser RemoveIPC StandardInput StandardOutput
		StandardError StandardInputText StandardInputData TTYPath TTYReset
		TTYVHangup TTYVTDisallocate TTYRows TTYColumns SyslogIdentifier
		SyslogFacility SyslogLevel SyslogLevelPrefix LogLevelMax
		LogRateLimitIntervalSec LogRateLimitBurst LogExtraFields LogFilterPatterns
		Capabilities SecureBits CapabilityBoundingSet AmbientCapabilities
		TimerSlackNSec NoNewPrivileges KeyringMode ProtectProc ProcSubset
		PrivateBPF BPFDelegateCommands BPFDelegateMaps BPFDelegatePrograms
		BPFDelegateAttachments SystemCallFilter SystemCallArchitectures
		SystemCallErrorNumber SystemCallLog MemoryDenyWriteExecute
		RestrictNamespaces RestrictRealtime RestrictSUIDSGID
		RestrictAddressFamilies LockPersonality DelegateNamespaces
		RestrictFileSystems LandlockConfig LimitCPU LimitFSIZE LimitDATA
		LimitSTACK LimitCORE LimitRSS LimitNOFILE LimitAS LimitNPROC LimitMEMLOCK
		LimitLOCKS LimitSIGPENDING LimitMSGQUEUE LimitNICE LimitRTPRIO LimitRTTIME
		ReadWriteDirectories ReadOnlyDirectories InaccessibleDirectories
		ReadWritePaths ReadOnlyPaths InaccessiblePaths ExecPaths NoExecPaths
		ExecSearchPath BindPaths BindReadOnlyPaths TemporaryFileSystem PrivateTmp
		PrivateDevices ProtectKernelTunables ProtectKernelModules
		ProtectKernelLogs ProtectClock ProtectControlGroups NetworkNamespacePath
		IPCNamespacePath LogNamespace PrivateNetwork PrivateUsers PrivateMounts
		PrivateIPC PrivatePIDs ProtectSystem ProtectHome MountFlags MountAPIVFS
		BindLogSockets Personality RuntimeDirectoryPreserve RuntimeDirectoryMode
		RuntimeDirectory StateDirectoryMode StateDirectoryAccounting
		StateDirectoryQuota StateDirectory CacheDirectoryMode
		CacheDirectoryAccounting CacheDirectoryQuota CacheDirectory
		LogsDirectoryMode LogsDirectoryAccounting LogsDirectoryQuota LogsDirectory
		ConfigurationDirectoryMode ConfigurationDirectory SetCredential
		SetCredentialEncrypted LoadCredential LoadCredentialEncrypted
		ImportCredential TimeoutCleanSec PAMName IgnoreSIGPIPE UtmpIdentifier
		UtmpMode SELinuxContext AppArmorProfile SmackProcessLabel ProtectHostname
		MemoryKSM

		SendSIGKILL SendSIGHUP KillMode KillSignal RestartKillSignal
		FinalKillSignal WatchdogSignal

		Slice AllowedCPUs StartupAllowedCPUs AllowedMemoryNodes
		StartupAllowedMemoryNodes CPUAccounting CPUWeight StartupCPUWeight
		CPUShares StartupCPUShares CPUQuota CPUQuotaPeriodSec MemoryAccounting
		MemoryMin DefaultMemoryMin DefaultMemoryLow DefaultStartupMemoryLow
		MemoryLow StartupMemoryLow MemoryHigh StartupMemoryHigh MemoryMax
		StartupMemoryMax MemorySwapMax StartupMemorySwapMax MemoryZSwapMax
		StartupMemoryZSwapMax MemoryZSwapWriteback MemoryLimit DeviceAllow
		DevicePolicy IOAccounting IOWeight StartupIOWeight IODeviceWeight
		IOReadBandwidthMax IOWriteBandwidthMax IOReadIOPSMax IOWriteIOPSMax
		IODeviceLatencyTargetSec BlockIOAccounting BlockIOWeight
		StartupBlockIOWeight BlockIODeviceWeight BlockIOReadBandwidth
		BlockIOWriteBandwidth TasksAccounting TasksMax Delegate DelegateSubgroup
		DisableControllers IPAccounting IPAddressAllow IPAddressDeny
		IPIngressFilterPath IPEgressFilterPath ManagedOOMSwap
		ManagedOOMMemoryPressure ManagedOOMMemoryPressureLimit
		ManagedOOMMemoryPressureDurationSec ManagedOOMPreference NetClass
		BPFProgram SocketBindAllow SocketBindDeny RestrictNetworkInterfaces
		MemoryPressureThresholdSec MemoryPressureWatch NFTSet CoredumpReceive`,
	"Install": `Alias WantedBy RequiredBy UpheldBy Also DefaultInstance`,
}

// knownKeys indexes systemdKeys, built at the first use: every process
// of luod runs the package's init, the exec shim of each service too.
var knownKeys = sync.OnceValue(func() map[string]map[string]bool {
	m := make(map[string]map[string]bool)
	for section, keys := range systemdKeys {
		m[section] = make(map[string]bool)
		for _, k := range strings.Fields(keys) {
			m[section][k] = true
		}
	}
	return m
})

// isSystemdKey reports whether systemd knows key in section.
func isSystemdKey(section, key string) bool {
	if section == "Unit" && (strings.HasPrefix(key, "Condition") && len(key) > len("Condition") ||
		strings.HasPrefix(key, "Assert") && len(key) > len("Assert")) {
		return true // ConditionPathExists=, AssertVirtualization=, …
	}
	return knownKeys()[section][key]
}

// sectionOf returns a section, other than except, where systemd knows key.
func sectionOf(key, except string) string {
	for _, s := range []string{"Unit", "Service", "Install"} {
		if s != except && isSystemdKey(s, key) {
			return s
		}
	}
	return ""
}
