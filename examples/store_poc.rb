# frozen_string_literal: true

# The igniter-ledger smoke (the 0.5.x README's POC): write, read, time travel, history,
# partitions, scope query, checkpoint and reopen, on a file-backed store.
#
#   rake compile && ruby -Ilib examples/store_poc.rb

require "igniter-ledger"
require "tmpdir"

def show(label, value)
  puts format("  %-34s %s", label, value.inspect)
end

Dir.mktmpdir("igniter-ledger-poc") do |dir|
  path = File.join(dir, "reminders.wal")
  puts "== write + read (#{path})"
  store = Igniter::Ledger::LedgerStore.open(path)
  first = store.write(store: :reminders, key: "r1", value: { title: "Buy milk", status: :open })
  second = store.write(store: :reminders, key: "r1", value: { title: "Buy milk", status: :done })
  store.write(store: :reminders, key: "r2", value: { title: "Call mum", status: :open })
  show "read r1", store.read(store: :reminders, key: "r1")
  show "fact id / store / key", [second.id, second.store, second.key]
  show "causation == first.id", second.causation == first.id
  show "value hash", second.value_hash[0, 16] + "..."

  puts "== time travel"
  show "as of the first write", store.time_travel(store: :reminders, key: "r1", at: first.transaction_time)
  show "before anything", store.read(store: :reminders, key: "r1", as_of: first.transaction_time - 1)

  puts "== history"
  store.history(store: :reminders, key: "r1").each do |f|
    show format("%.6f", f.transaction_time), f.value
  end
  show "causation chain depth", store.causation_chain(store: :reminders, key: "r1").size

  puts "== append + partition"
  %w[o1 o2 o1 o1].each_with_index do |order, i|
    store.append(history: :order_events, event: { order_id: order, seq: i }, partition_key: :order_id)
  end
  slice = store.history_partition(store: :order_events, partition_key: :order_id, partition_value: "o1")
  show "order o1 events (seq)", slice.map { |f| f.value[:seq] }

  puts "== scope query"
  invalidated = []
  store.register_path(Igniter::Ledger.access_path(store: :reminders, scope: :open, filters: { status: :open },
                                                  consumers: [->(s, scope) { invalidated << [s, scope] }]))
  show "open reminders", store.query(store: :reminders, scope: :open).map(&:key)
  store.write(store: :reminders, key: "r2", value: { title: "Call mum", status: :done })
  show "after closing r2", store.query(store: :reminders, scope: :open).map(&:key)
  show "scope consumer was told", invalidated

  puts "== checkpoint + reopen"
  show "checkpoint", store.checkpoint.slice(:fact_count, :bytes)
  store.write(store: :reminders, key: "r3", value: { title: "After the checkpoint", status: :open })
  count = store.fact_count
  store.close
  reopened = Igniter::Ledger::LedgerStore.open(path)
  report = reopened.open_report
  show "facts before / after reopen", [count, reopened.fact_count]
  show "snapshot", report[:snapshot]
  show "WAL frames replayed after it", report[:frames_replayed]
  show "read r1 after reopen", reopened.read(store: :reminders, key: "r1")
  show "r1 as of the first write", reopened.time_travel(store: :reminders, key: "r1", at: first.transaction_time)
  reopened.close
end
puts "ok"
