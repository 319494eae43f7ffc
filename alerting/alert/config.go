package alert

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/tpflow/tpflow/alerting/notify"
	"github.com/tpflow/tpflow/schemas"
)

// Config configures the alert role.
type Config struct {
	// RulesFiles are the alert rules files; every one must validate.
	RulesFiles []string `yaml:"rules_files"`
	// StateFile is where alert state is saved after each evaluation and
	// restored from at start; empty keeps state in memory only.
	StateFile string `yaml:"state_file"`
	// EvalInterval is how often the rules are evaluated.
	EvalInterval time.Duration `yaml:"eval_interval"`
	// Alertmanagers are the base URLs of the Alertmanagers (API v2) every
	// alert is sent to.
	Alertmanagers []string `yaml:"alertmanagers"`
	// Webhooks receive alerts in Alertmanager's webhook format; fields a
	// webhook leaves out take notify.DefaultWebhookConfig's values.
	// Validate checks each with those defaults filled in, so the loader's
	// walk leaves the list to it.
	Webhooks []notify.WebhookConfig `yaml:"webhooks" config:"novalidate"`
	// ResendInterval is how often a firing or resolved alert is sent again.
	ResendInterval time.Duration `yaml:"resend_interval"`
	// GroupID is the Kafka consumer group reading the stats topic.
	GroupID string `yaml:"group_id"`
	// LogsGroupID is the Kafka consumer group reading the logs topic for
	// the log rules; empty means GroupID + "-logs".
	LogsGroupID string `yaml:"logs_group_id"`
}

// DefaultConfig returns the defaults: an evaluation every 10s, a resend
// every minute, group tpflow-alert, no rules and no receivers.
func DefaultConfig() Config {
	return Config{
		RulesFiles:     []string{},
		EvalInterval:   10 * time.Second,
		Alertmanagers:  []string{},
		Webhooks:       []notify.WebhookConfig{},
		ResendInterval: time.Minute,
		GroupID:        "tpflow-alert",
	}
}

// Validate reports every impossible value as a *schemas.FieldError. An
// empty rules_files is valid here, because every role shares the
// configuration; Run refuses it.
func (c Config) Validate() error {
	var errs []error
	for i, f := range c.RulesFiles {
		if f == "" {
			errs = append(errs, schemas.Fieldf(fmt.Sprintf("rules_files[%d]", i), "must not be empty"))
		}
	}
	if c.EvalInterval < 10*time.Millisecond || c.EvalInterval > time.Hour {
		errs = append(errs, schemas.Fieldf("eval_interval", "must be between 10ms and 1h, got %s", c.EvalInterval))
	}
	if c.ResendInterval <= 0 {
		errs = append(errs, schemas.Fieldf("resend_interval", "must be positive, got %s", c.ResendInterval))
	}
	if c.GroupID == "" {
		errs = append(errs, schemas.Fieldf("group_id", "must not be empty"))
	}
	if c.LogsGroupID != "" && c.LogsGroupID == c.GroupID {
		errs = append(errs, schemas.Fieldf("logs_group_id", "must differ from group_id %q", c.GroupID))
	}
	for i, u := range c.Alertmanagers {
		if err := checkURL(u); err != nil {
			errs = append(errs, schemas.Fieldf(fmt.Sprintf("alertmanagers[%d]", i), "%v", err))
		}
	}
	for i, w := range c.Webhooks {
		if err := checkURL(w.URL); err != nil {
			errs = append(errs, schemas.Fieldf(fmt.Sprintf("webhooks[%d].url", i), "%v", err))
		} else if err := w.WithDefaults().Validate(); err != nil {
			errs = append(errs, schemas.Fieldf(fmt.Sprintf("webhooks[%d]", i), "%v", err))
		}
	}
	return errors.Join(errs...)
}

// checkURL accepts an absolute http or https URL.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", s)
	}
	return nil
}

// logsGroup is the consumer group of the logs topic.
func (c Config) logsGroup() string {
	if c.LogsGroupID != "" {
		return c.LogsGroupID
	}
	return c.GroupID + "-logs"
}
