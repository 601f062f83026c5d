"""The notebook's model classes, verbatim in structure (lab 02a), as the reference the zoo must match."""

import torch
import torch.nn as nn
import torch.nn.functional as F

num_positions = 9


class Net(nn.Module):
    def __init__(self, in_ch):
        kernel_size = 3
        super().__init__()
        flattened_size = 200 * 8 * 8
        self.conv1 = nn.Conv2d(in_ch, 50, kernel_size, padding=1)
        self.conv2 = nn.Conv2d(50, 100, kernel_size, padding=1)
        self.conv3 = nn.Conv2d(100, 200, kernel_size, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(flattened_size, 1000)
        self.fc2 = nn.Linear(1000, 100)
        self.fc3 = nn.Linear(100, num_positions)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LateNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.rgb = Net(4)
        self.xyz = Net(4)
        self.fc1 = nn.Linear(num_positions * 2, num_positions * 10)
        self.fc2 = nn.Linear(num_positions * 10, num_positions)

    def forward(self, x_rgb, x_xyz):
        x = torch.cat((self.rgb(x_rgb), self.xyz(x_xyz)), 1)
        return self.fc2(F.relu(self.fc1(x)))


class _TwoBranch(nn.Module):
    fc1_in = 0

    def __init__(self, rgb_ch, xyz_ch):
        kernel_size = 3
        super().__init__()
        self.rgb_conv1 = nn.Conv2d(rgb_ch, 25, kernel_size, padding=1)
        self.rgb_conv2 = nn.Conv2d(25, 50, kernel_size, padding=1)
        self.rgb_conv3 = nn.Conv2d(50, 100, kernel_size, padding=1)
        self.xyz_conv1 = nn.Conv2d(xyz_ch, 25, kernel_size, padding=1)
        self.xyz_conv2 = nn.Conv2d(25, 50, kernel_size, padding=1)
        self.xyz_conv3 = nn.Conv2d(50, 100, kernel_size, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(self.fc1_in, 1000)
        self.fc2 = nn.Linear(1000, 100)
        self.fc3 = nn.Linear(100, num_positions)

    def fuse(self, a, b):
        raise NotImplementedError

    def forward(self, x_rgb, x_xyz):
        x_rgb = self.pool(F.relu(self.rgb_conv1(x_rgb)))
        x_rgb = self.pool(F.relu(self.rgb_conv2(x_rgb)))
        x_rgb = self.pool(F.relu(self.rgb_conv3(x_rgb)))
        x_xyz = self.pool(F.relu(self.xyz_conv1(x_xyz)))
        x_xyz = self.pool(F.relu(self.xyz_conv2(x_xyz)))
        x_xyz = self.pool(F.relu(self.xyz_conv3(x_xyz)))
        x = torch.flatten(self.fuse(x_rgb, x_xyz), 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ConcatIntermediateNet(_TwoBranch):
    fc1_in = 200 * 8 * 8

    def fuse(self, a, b):
        return torch.cat((a, b), 1)


class MatmulIntermediateNet(_TwoBranch):
    fc1_in = 100 * 8 * 8

    def fuse(self, a, b):
        return torch.matmul(a, b)


class EarlyNet(nn.Module):
    """``Net(8)`` fed by the notebook's ``get_early_inputs`` (channel concatenation)."""

    def __init__(self):
        super().__init__()
        self.net = Net(8)

    def forward(self, x_rgb, x_xyz):
        return self.net(torch.cat((x_rgb, x_xyz), 1))


class SingleNet(nn.Module):
    def __init__(self, which):
        super().__init__()
        self.which = which
        self.net = Net(4)

    def forward(self, x_rgb, x_xyz):
        return self.net(x_rgb if self.which == "rgb" else x_xyz)


def course_model(name):
    """The notebook's model for the zoo's ``name`` and a function giving its own state_dict."""
    if name == "early":
        m = EarlyNet()
        return m, m.net.state_dict
    if name in ("rgb", "lidar"):
        m = SingleNet(name)
        return m, m.net.state_dict
    m = {"late": LateNet, "concat": lambda: ConcatIntermediateNet(4, 4), "matmul": lambda: MatmulIntermediateNet(4, 4)}[name]()
    return m, m.state_dict
