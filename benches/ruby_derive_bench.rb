# frozen_string_literal: true

# What one source write costs from Ruby with derived state: no rule, one derivation, one
# scatter, one relation — on a store already holding N facts (in memory, so the figures
# are the derive path, not the disk). The same workload as examples/derive_bench.rs:
#
#   rake compile
#   ruby -Ilib benches/ruby_derive_bench.rb 10000 1000000
#
# `tasks` is filled with N facts of distinct keys, value
# `{status: (1 in 100 :open), p: i % 1000, n: i}` (write_batch of 10,000); then the rule
# is registered (which reconciles over the N facts, timed separately) and W = 2,000
# writes of new keys are timed one by one. The rules: a derivation counting the
# `status: :open` facts (its rule gets N/100 Fact objects per write), a scatter counting
# facts per `p`, a relation indexing keys by `p` (N/1000 keys per index record).

require "igniter-ledger"

W = 2_000
L = Igniter::Ledger

def task(i)
  { status: (i % 100).zero? ? :open : :done, p: i % 1000, n: i }
end

def register(store, rule)
  case rule
  when :none then nil
  when :derivation
    store.register_derivation(source_store: :tasks, source_filters: { status: :open }, target_store: :summaries,
                              target_key: "open", rule: ->(facts) { { count: facts.size } })
  when :scatter
    store.register_scatter(source_store: :tasks, partition_by: :p, target_store: :per_p,
                           rule: ->(_pv, existing, _fact) { (existing || 0) + 1 })
  when :relation
    store.register_relation(:by_p, source: :tasks, partition: :p, target: :ps)
  end
end

def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)

sizes = ARGV.map { |a| Integer(a.delete("_")) }
sizes = [10_000] if sizes.empty?
puts "| facts in store | rule | register (reconcile) | write mean | p50 | p99 |"
puts "|---:|---|---:|---:|---:|---:|"
sizes.each do |n|
  %i[none derivation scatter relation].each do |rule|
    store = L::LedgerStore.new
    (0...n).each_slice(10_000) do |slice|
      store.write_batch(slice.map { |i| { store: :tasks, key: "t#{i}", value: task(i) } })
    end
    GC.start
    t = clock
    register(store, rule)
    reg = (clock - t) * 1e3
    us = Array.new(W)
    start = clock
    W.times do |j|
      i = n + j
      t = clock
      store.write(store: :tasks, key: "t#{i}", value: task(i))
      us[j] = (clock - t) * 1e6
    end
    mean = (clock - start) * 1e6 / W
    raise "rule failures: #{store.last_derivation_failure}" unless store.derivation_failures.zero?

    us.sort!
    puts format("| %d | %s | %.1f ms | %.1f µs | %.1f µs | %.1f µs |", n, rule, reg, mean, us[W / 2], us[(W * 0.99).to_i])
  end
end
