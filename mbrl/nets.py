"""Networks shared by the algorithms."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PolicyValueNet", "ResidualBlock", "mlp"]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class PolicyValueNet(nn.Module):
    """AlphaZero's residual tower with a policy head and a tanh value head.

    Input ``[B, C, H, W]`` planes; output ``(logits [B, A], value [B])``, the
    value in [-1, 1] for the player to move.
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        num_blocks: int,
        channels: int,
        value_hidden: int = 64,
    ):
        super().__init__()
        C, H, W = obs_shape
        self.stem = nn.Sequential(
            nn.Conv2d(C, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.tower = nn.Sequential(*[ResidualBlock(channels) for _ in range(num_blocks)])
        self.policy_head = nn.Sequential(
            nn.Conv2d(channels, 4, 1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * H * W, num_actions),
        )
        self.value_head = nn.Sequential(
            nn.Conv2d(channels, 2, 1, bias=False),
            nn.BatchNorm2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * H * W, value_hidden),
            nn.ReLU(),
            nn.Linear(value_hidden, 1),
            nn.Tanh(),
        )

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        x = self.tower(self.stem(obs))
        return self.policy_head(x), self.value_head(x).squeeze(-1)


def mlp(
    sizes: list[int], activation: type[nn.Module] = nn.Tanh, output_gain: float | None = None
) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last).

    Hidden layers use orthogonal init with gain sqrt(2) (the PPO/A2C convention);
    ``output_gain`` sets the last layer's gain (e.g. 0.01 for a policy head).
    """
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        gain = (output_gain if output_gain is not None else 1.0) if last else 2**0.5
        nn.init.orthogonal_(linear.weight, gain)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)
