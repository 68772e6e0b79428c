"""The synthetic world: characters with checkable instructions, simulated users with a hidden ground truth,
traffic between them and a policy, and simulated raters with noise and biases.

Modules: `instructions` (checkers and repairs), `characters` (cards), `params` (every behavioural parameter,
with its reasoning), `users` (population, hidden utility, signals), `prompts` (the users' message bank),
`traffic` (sessions with a real policy), `raters` (simulated annotation).
"""
