// Package configs holds the edge's configuration: one plain Config struct,
// its defaults in one place (Default), loading from YAML (Load) with unknown
// keys refused, and one Validate that reports every problem at once. It also
// carries the demo activity the embedded mode seeds, and the example files
// embedded.yaml and production.yaml.
//
// Design decisions: no globals and no init side effects; environment
// variables are applied only by ApplyEnv, named in the README; every backend
// defaults to its embedded implementation (memory stock, SQLite, the
// in-process broker when kafka.brokers is empty, the embedded analytics
// store), so a config file is optional and a newcomer runs the whole flow
// with none.
package configs
