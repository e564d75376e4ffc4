# frozen_string_literal: true

# A fixed workload over every Ruby-facing path the benchmarks measure (writes, appends,
# cached and cold reads, as_of, partition slices with and without values, flush-mode file
# writes, a batch, reopen from the WAL and from a snapshot), for counting instructions
# under callgrind: a count does not move with the machine's load, which wall-clock
# figures on a shared machine do. GC is disabled after setup, so collection is not
# charged to whichever call happens to allocate.
#
#   rake compile
#   valgrind --tool=callgrind --callgrind-out-file=cg.out ruby -Ilib benches/callgrind_ops.rb
#   callgrind_annotate --inclusive=yes --threshold=100 cg.out | grep -E 'open_with|commit_deferred|stored_value'
#
# Compare two builds by running it against each build's lib/ and comparing the inclusive
# count of the same function (see benches/results/structure-issue9.md).
require "igniter-ledger"
require "tmpdir"
L = Igniter::Ledger
STATUSES = %i[open in_progress done].freeze
N = 2_000
def value(i) = { title: "Task #{i}", status: STATUSES[i % 3], priority: i % 5, assignee: "user-#{i % 100}", tags: ["t#{i % 7}"] }
def event(i) = { order_id: "o#{i % 20}", type: :line_added, sku: "sku-#{i % 1000}", qty: 1 + i % 4 }
keys = Array.new(N / 10) { |i| "task-#{i}" }
values = Array.new(N) { |i| value(i) }
events = Array.new(N) { |i| event(i) }
GC.start
GC.disable
s = L::LedgerStore.new
N.times { |i| s.write(store: :tasks, key: keys[i % keys.size], value: values[i]) }
pick = Array.new(3 * N) { |i| keys[(i * 7919) % keys.size] }
pick.each { |k| s.read(store: :tasks, key: k) }
mid = s.fact_log_all[N / 2].transaction_time
pick.each { |k| s.read(store: :tasks, key: k, as_of: mid) }
cold = L::LedgerStore.new(read_cache: 0, partition_cache: 0)
N.times { |i| cold.write(store: :tasks, key: keys[i % keys.size], value: values[i]) }
pick.each { |k| cold.read(store: :tasks, key: k) }
N.times { |i| s.append(history: :ev, event: events[i], partition_key: :order_id) }
N.times { |i| cold.append(history: :ev, event: events[i], partition_key: :order_id) }
200.times { |i| s.history_partition(store: :ev, partition_key: :order_id, partition_value: "o#{i % 20}") }
200.times { |i| cold.history_partition(store: :ev, partition_key: :order_id, partition_value: "o#{i % 20}").each(&:value) }
Dir.mktmpdir do |dir|
  path = File.join(dir, "f.wal")
  f = L.open(path, durability: :flush)
  N.times { |i| f.write(store: :tasks, key: keys[i % keys.size], value: values[i]) }
  f.transaction { |tx| 200.times { |i| tx.write(store: :b, key: "k#{i}", value: values[i]) } }
  f.close
  3.times { L.open(path).close }
  g = L.open(path); g.checkpoint; g.close
  3.times { L.open(path).close }
end
