// 300 streams, interleaved: balances per account, totals across them.
projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (s, e) { s.balance += e.amount; s.moves += 1; },
  Withdrawn: function (s, e) { s.balance -= e.amount; s.moves += 1; }
});
projections.aggregate('Bank').by({
  $init: function () { return { deposited: 0, withdrawn: 0 }; },
  Deposited: function (s, e) { s.deposited += e.amount; },
  Withdrawn: function (s, e) { s.withdrawn += e.amount; }
});
