"""Play a batch of random connect-four games through the model interface.

python examples/random_playouts.py
"""

import torch

from mbrl import games


def main(batch_size: int = 8, seed: int = 0) -> None:
    game = games.make("connect_four")
    generator = torch.Generator().manual_seed(seed)
    state = game.initial_state(batch_size)
    while not game.is_terminal(state).all():
        live = torch.nonzero(~game.is_terminal(state)).flatten()
        legal = game.legal_actions(state[live])
        action = torch.multinomial(legal.float(), 1, generator=generator).squeeze(1)
        state = state.clone()
        state[live] = game.step(state[live], action).state
    print(game.render(state[0]))
    print("returns of player 0:", game.returns(state)[:, 0].tolist())


if __name__ == "__main__":
    main()
