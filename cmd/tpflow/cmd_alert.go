package main

import "context"

func alertCommand() *command {
	return &command{
		name:    "alert",
		summary: "evaluate alert rules over the windows; notify Alertmanager and webhooks",
		help: `Consumes the stats topic, evaluates the alert rules (a label selector, a
measure such as tp99, qps or error_rate, a window, a threshold and a "for"
duration) and moves alerts through pending, firing and resolved, sending
notifications to Alertmanager (API v2) and webhooks and recording history.`,
		example: "tpflow alert --config tpflow.yaml --brokers kafka-1:9092",
		common:  true,
		role:    runAlert,
	}
}

// runAlert is the alert role.
func runAlert(ctx context.Context, env *Env, cfg *Config, args []string) error {
	return errNotImplemented
}
