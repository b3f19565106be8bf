"""Fused regression losses: pinball, asymmetric, MSE/MAE/Huber, expectile, smooth pinball, mixed per column."""
