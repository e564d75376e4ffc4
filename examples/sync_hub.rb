# frozen_string_literal: true

# Two Ruby stores syncing through a PostgreSQL hub: eu pushes and pulls users, us pushes
# and pulls orders. Usage: ruby -Ilib examples/sync_hub.rb postgres://user@host:port/hub
require "igniter/ledger"
require "tmpdir"

hub = ARGV.fetch(0) { abort "usage: #{$PROGRAM_NAME} postgres://user@host:port/hub" }
Dir.mktmpdir do |dir|
  eu = Igniter::Ledger.open(File.join(dir, "eu.wal"))
  us = Igniter::Ledger.open(File.join(dir, "us.wal"))
  eu_sync = eu.start_sync(hub: hub, push: true, pull: [:users])
  us_sync = us.start_sync(hub: hub, push: true, pull: [:orders])
  puts "eu: node #{eu_sync.node}"
  puts "us: node #{us_sync.node}"
  order = eu.write(store: :orders, key: "o-1", value: { status: :placed, total: 42 })
  user = us.write(store: :users, key: "alice", value: "Alice")
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  sleep 0.005 until us.fact_by_id(order.id) && eu.fact_by_id(user.id)
  puts format("converged in %.0f ms", (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000)
  pulled = us.read_fact(store: :orders, key: "o-1")
  puts "us reads orders/o-1 = #{us.read(store: :orders, key: 'o-1').inspect} " \
       "(same id: #{pulled.id == order.id}, same hash: #{pulled.value_hash == order.value_hash})"
  puts "eu reads users/alice = #{eu.read(store: :users, key: 'alice').inspect}"
  p eu_sync.stop
  p us_sync.stop
  eu.close
  us.close
end
