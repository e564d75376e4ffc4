# frozen_string_literal: true

# Probe of one path: writes of new keys to a store with one relation (the profile quoted in
# BENCHMARKS-ruby.md). ruby -Ilib benches/ruby_relation_probe.rb FACTS WRITES  => µs per write

require "igniter-ledger"
n = Integer(ARGV[0])
store = Igniter::Ledger::LedgerStore.new
(0...n).each_slice(10_000) { |s| store.write_batch(s.map { |i| { store: :tasks, key: "t#{i}", value: { status: :done, p: i % 1000, n: i } } }) }
store.register_relation(:by_p, source: :tasks, partition: :p, target: :ps)
t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
m = Integer(ARGV[1])
m.times { |j| i = n + j; store.write(store: :tasks, key: "t#{i}", value: { status: :done, p: i % 1000, n: i }) }
p (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t) / m * 1e6
