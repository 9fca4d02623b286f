# The demo's Swin: Swin-B's modules at width 48 with two blocks per stage and window 4, at the
# phantoms' 128 px (_base_/datasets/phantoms.py). The backbone of _base_/models/
# foundation_x_tiny.py (every stage out) and of configs/ark_demo.py (the last stage).
demo_swin = dict(
    type='mmpretrain.SwinTransformer',
    arch=dict(embed_dims=48, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16]),  # Swin-B: 128 wide
    img_size=128,
    window_size=4,
    pad_small_map=True,
    drop_path_rate=0.1,
    out_indices=(0, 1, 2, 3))
